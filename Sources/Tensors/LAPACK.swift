import COpenBLAS

/// The LAPACK calls the engine uses (from libopenblas). Only this module imports COpenBLAS.
///
/// Matrices here are dense `n × n`, Float64, stored contiguously. The routines take symmetric
/// matrices, for which row-major and LAPACK's column-major layouts are the same array.
public enum LAPACK {
    /// Solves `A·X = B` for a symmetric positive definite `A` by Cholesky factorization (`dposv`).
    ///
    /// - `a`: the `n × n` matrix (only its upper triangle in row-major terms is read, which is
    ///   LAPACK's lower triangle); overwritten by the Cholesky factor.
    /// - `b`: `rightHandSides` vectors of length `n`, one after the other; overwritten by the solutions.
    ///
    /// Returns false, leaving `b` unspecified, when `A` is not positive definite (a leading minor
    /// is not positive: LAPACK's `info > 0`). `n = 0` is a trivial success. A NaN in `A` is not
    /// reliably reported (OpenBLAS's own `dpotrf` does not test for it): check the solution.
    @discardableResult
    public static func solvePositiveDefinite(
        n: Int, a: UnsafeMutablePointer<Double>, b: UnsafeMutablePointer<Double>, rightHandSides: Int = 1
    ) -> Bool {
        precondition(n >= 0 && rightHandSides >= 0, "negative size n \(n), rightHandSides \(rightHandSides)")
        guard n > 0, rightHandSides > 0 else { return true }
        precondition(n <= Int(Int32.max), "n \(n) exceeds LAPACK's 32-bit indices")
        // "L" in column-major = the upper triangle of the row-major array.
        var uplo = CChar(UInt8(ascii: "L"))
        var order = Int32(n), columns = Int32(rightHandSides), leading = Int32(n), info: Int32 = 0
        dposv_(&uplo, &order, &columns, a, &leading, b, &leading, &info, 1)
        precondition(info >= 0, "dposv_: argument \(-info) is invalid")
        return info == 0
    }
}
