import Tensors
import Testing

@Suite("BLAS")
struct BLASTests {
    /// A row-major rows×columns matrix with values from `generator`.
    func matrix(_ rows: Int, _ columns: Int, _ generator: inout SeededGenerator) -> [Float] {
        (0..<(rows * columns)).map { _ in generator.uniform(-1, 1) }
    }

    /// (m, n, k): a tiny case, odd sizes that leave every kernel a remainder, and the engine's shapes (the
    /// LSTM's step and weight gradients, the MLP's layers, a convolution chunk), which run the kernels'
    /// blocked paths. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` to check the kernels OpenBLAS
    /// detects for this CPU (see README, Performance).
    static let shapes: [[Int]] = [[5, 7, 3], [17, 33, 65], [64, 512, 128], [64, 128, 512], [512, 16, 2048],
                                  [128, 512, 784], [512, 784, 128], [64, 9, 6272], [9, 6272, 64], [1, 1000, 37]]

    @Test("gemm matches a float64 matmul for every transpose combination and the engine's shapes",
          arguments: [false, true], shapes)
    func gemm(transposesA: Bool, shape: [Int]) {
        for transposesB in [false, true] { checkGemm(transposesA: transposesA, transposesB: transposesB, shape: shape) }
    }

    func checkGemm(transposesA: Bool, transposesB: Bool, shape: [Int]) {
        let transA: BLAS.Transpose = transposesA ? .transposed : .none
        let transB: BLAS.Transpose = transposesB ? .transposed : .none
        let (m, n, k) = (shape[0], shape[1], shape[2])
        let alpha: Float = 1.5
        let beta: Float = 0.5
        var generator = SeededGenerator(seed: 17)
        // Stored layouts: A is m×k, or k×m when transposed; B is k×n, or n×k when transposed.
        let a = matrix(transA == .none ? m : k, transA == .none ? k : m, &generator)
        let b = matrix(transB == .none ? k : n, transB == .none ? n : k, &generator)
        let c0 = matrix(m, n, &generator)
        let lda = transA == .none ? k : m
        let ldb = transB == .none ? n : k
        func opA(_ i: Int, _ p: Int) -> Double { Double(transA == .none ? a[i * lda + p] : a[p * lda + i]) }
        func opB(_ p: Int, _ j: Int) -> Double { Double(transB == .none ? b[p * ldb + j] : b[j * ldb + p]) }

        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += opA(i, p) * opB(p, j) }
                expected[i * n + j] = Double(alpha) * sum + Double(beta) * Double(c0[i * n + j])
            }
        }
        var c = c0
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a.baseAddress!, lda: lda,
                              b: b.baseAddress!, ldb: ldb, beta: beta, c: c.baseAddress!, ldc: n)
                }
            }
        }
        // Float32 rounding of a k-term sum of products of values in ±1 grows like √k.
        let error = zip(c, expected).map { abs(Double($0) - $1) }.max()! / Double(k).squareRoot()
        #expect(error < 2e-6, "\(transA)·\(transB) \(m)×\(n)×\(k): max abs error / √k \(error)")
    }

    @Test("gemm with beta 0 ignores what C held, even NaN")
    func betaZero() {
        let a: [Float] = [1, 2, 3, 4]  // 2×2
        let b: [Float] = [1, 0, 0, 1]
        var c: [Float] = [.nan, .nan, .nan, .nan]
        c.withUnsafeMutableBufferPointer { c in
            BLAS.gemm(.none, .none, m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, c: c.baseAddress!, ldc: 2)
        }
        #expect(c == [1, 2, 3, 4])
    }

    @Test("axpy, dot and scale compute y += αx, x·y and αx")
    func level1() {
        let x: [Float] = [1, 2, 3]
        var y: [Float] = [10, 20, 30]
        y.withUnsafeMutableBufferPointer { BLAS.axpy(count: 3, alpha: 2, x: x, y: $0.baseAddress!) }
        #expect(y == [12, 24, 36])
        #expect(BLAS.dot(count: 3, x, y) == 12 + 48 + 108)
        y.withUnsafeMutableBufferPointer { BLAS.scale(count: 3, alpha: 0.5, x: $0.baseAddress!) }
        #expect(y == [6, 12, 18])
    }
}
