import Tensors

/// Kernels shared by `LSTM` and `GRU`: branch-free σ and tanh that the loop vectorizer turns into
/// SIMD code (libm's `expf`/`tanhf` are opaque calls and would run one element at a time), the
/// (N, T, C) ↔ (T, N, C) reorderings between the batch-first tensors and the layers' time-major
/// buffers, column sums for bias gradients, and flat scratch buffers.
enum RecurrentKernels {
    /// e^x, Cephes' single-precision polynomial (≤ 2 ulp) after a range reduction x = n·ln 2 + r.
    /// x is clamped to [−87.3, 88.3] so that 2ⁿ stays a normal float; NaN propagates.
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let clamped = x < -87.3 ? -87.3 : (x > 88.3 ? 88.3 : x)
        // n = round(x / ln 2): adding 1.5·2²³ rounds to an integer and leaves n in the low mantissa bits.
        let shifter: Float = 12_582_912
        let shifted = clamped * 1.442_695_04 + shifter
        let n = shifted - shifter
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4  // ln 2 split in two for an exact n·ln 2
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        p = p * r * r + r + 1
        // 2ⁿ: the low bits of `shifted` are n (two's complement); shifted into the exponent field with the bias.
        let twoToN = Float(bitPattern: (shifted.bitPattern &+ 127) &<< 23)
        return p * twoToN
    }

    /// σ(x) = 1 / (1 + e^−x).
    @inline(__always)
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// tanh(x) as Eigen's rational minimax approximation on [−7.905, 7.905] (≤ 4e-7 absolute and
    /// relative error, exact sign and odd symmetry; beyond the clamp tanh rounds to ±1 in float32 anyway).
    @inline(__always)
    static func tanh(_ x: Float) -> Float {
        let bound: Float = 7.905_311_107_635_498
        let c = x < -bound ? -bound : (x > bound ? bound : x)
        let c2 = c * c
        var p: Float = -2.760_768_477_423_55e-16
        p = p * c2 + 2.000_187_904_824_77e-13
        p = p * c2 - 8.604_671_522_137_35e-11
        p = p * c2 + 5.122_297_090_371_14e-08
        p = p * c2 + 1.485_722_357_179_79e-05
        p = p * c2 + 6.372_619_288_754_36e-04
        p = p * c2 + 4.893_524_558_917_86e-03
        var q: Float = 1.198_258_394_667_02e-06
        q = q * c2 + 1.185_347_056_866_54e-04
        q = q * c2 + 2.268_434_632_439_00e-03
        q = q * c2 + 4.893_525_185_543_85e-03
        return c * p / q
    }

    /// dst (T, N, C) ← src (N, T, C): the batch-first layout of the tensors to the layers' time-major one.
    static func batchToTimeMajor(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, batch n: Int, steps t: Int, width c: Int
    ) {
        for sample in 0..<n {
            for step in 0..<t { (dst + (step * n + sample) * c).update(from: src + (sample * t + step) * c, count: c) }
        }
    }

    /// dst (N, T, C) ← src (T, N, C).
    static func timeToBatchMajor(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, batch n: Int, steps t: Int, width c: Int
    ) {
        for sample in 0..<n {
            for step in 0..<t { (dst + (sample * t + step) * c).update(from: src + (step * n + sample) * c, count: c) }
        }
    }

    /// sums[k] = Σ_row matrix[row, k] over a (rows, columns) row-major matrix.
    static func columnSums(
        of matrix: UnsafePointer<Float>, rows: Int, columns: Int, into sums: UnsafeMutablePointer<Float>
    ) {
        sums.update(repeating: 0, count: columns)
        for row in 0..<rows {
            let values = matrix + row * columns
            for k in 0..<columns { sums[k] += values[k] }
        }
    }

    /// At least `count` floats of flat scratch storage, reusing `buffer` when it is large enough.
    /// Internal buffers have no meaningful shape (they are time-major); only their capacity counts.
    @inline(__always)
    static func scratch(_ buffer: inout Tensor?, count: Int) -> UnsafeMutablePointer<Float> {
        if let existing = buffer, existing.capacity >= count { return existing.pointer }
        let fresh = Tensor(shape: [count])
        buffer = fresh
        return fresh.pointer
    }

    /// torch's RNN initialization: every weight and bias uniform in ±1/√hidden.
    /// torch's four RNN tensors, `weight_ih_l0` (G, I), `weight_hh_l0` (G, H), `bias_ih_l0` (G),
    /// `bias_hh_l0` (G), drawn in that order, uniform in ±1/√H (G = gates · H).
    static func makeParameters(gateCount: Int, inputSize: Int, hiddenSize: Int, generator: inout SeededGenerator)
        -> (inputWeight: Parameter, recurrentWeight: Parameter, inputBias: Parameter, recurrentBias: Parameter)
    {
        func draw(_ name: String, _ shape: [Int], isWeight: Bool) -> Parameter {
            Parameter(name: name, value: uniformTensor(shape, hiddenSize: hiddenSize, generator: &generator), isWeight: isWeight)
        }
        return (draw("weight_ih_l0", [gateCount, inputSize], isWeight: true),
                draw("weight_hh_l0", [gateCount, hiddenSize], isWeight: true),
                draw("bias_ih_l0", [gateCount], isWeight: false),
                draw("bias_hh_l0", [gateCount], isWeight: false))
    }

    static func uniformTensor(_ shape: [Int], hiddenSize: Int, generator: inout SeededGenerator) -> Tensor {
        let bound = 1 / Float(hiddenSize).squareRoot()
        let tensor = Tensor(shape: shape)
        for i in 0..<tensor.count { tensor[i] = generator.uniform(-bound, bound) }
        return tensor
    }
}
