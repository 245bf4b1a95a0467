import Tensors
import Testing

@Suite("LAPACK")
struct LAPACKTests {
    @Test("solvePositiveDefinite solves a symmetric positive definite system and overwrites b with x")
    func solvesSystem() {
        // A = MᵀM + I for a fixed M is symmetric positive definite; b = A·x for a known x.
        let n = 6
        var generator = SeededGenerator(seed: 3)
        let m = (0..<(n * n)).map { _ in Double(generator.uniform(-1, 1)) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var sum = i == j ? 1.0 : 0.0
                for k in 0..<n { sum += m[k * n + i] * m[k * n + j] }
                a[i * n + j] = sum
            }
        }
        let x = (0..<n).map { Double($0) - 2.5 }
        var b = (0..<n).map { i in (0..<n).reduce(0.0) { $0 + a[i * n + $1] * x[$1] } }
        let original = a
        let isSolved = a.withUnsafeMutableBufferPointer { a in
            b.withUnsafeMutableBufferPointer { b in LAPACK.solvePositiveDefinite(n: n, a: a.baseAddress!, b: b.baseAddress!) }
        }
        #expect(isSolved)
        for i in 0..<n { #expect(abs(b[i] - x[i]) <= 1e-12 * 10, "x[\(i)] = \(b[i]), expected \(x[i])") }
        #expect(a != original, "a holds the Cholesky factor afterwards")
    }

    @Test("solvePositiveDefinite solves several right-hand sides at once")
    func severalRightHandSides() {
        var a: [Double] = [4, 1, 1, 3]
        var b: [Double] = [1, 2, 4, 7]  // columns (1, 2) and (4, 7)
        let isSolved = a.withUnsafeMutableBufferPointer { a in
            b.withUnsafeMutableBufferPointer { LAPACK.solvePositiveDefinite(n: 2, a: a.baseAddress!, b: $0.baseAddress!, rightHandSides: 2) }
        }
        #expect(isSolved)
        // [[4, 1], [1, 3]]⁻¹ = [[3, −1], [−1, 4]] / 11
        let expected: [Double] = [1.0 / 11, 7.0 / 11, 5.0 / 11, 24.0 / 11]
        for (value, want) in zip(b, expected) { #expect(abs(value - want) <= 1e-14) }
    }

    @Test("solvePositiveDefinite reports an indefinite matrix instead of solving")
    func refusesIndefinite() {
        var a: [Double] = [1, 2, 2, 1]  // eigenvalues 3 and −1
        var b: [Double] = [1, 1]
        let isSolved = a.withUnsafeMutableBufferPointer { a in
            b.withUnsafeMutableBufferPointer { LAPACK.solvePositiveDefinite(n: 2, a: a.baseAddress!, b: $0.baseAddress!) }
        }
        #expect(!isSolved)
    }
}
