import Tensors

/// `dense`: y = f(x·Wᵀ + b), torch's Linear followed by an optional activation.
///
/// Shapes (legend): N batch, I inputs, O units.
///   x (N, I) · W (O, I) · b (O) → z (N, O) → y = f(z) (N, O)
/// Forward is one sgemm (x·Wᵀ); backward is two (dW += dzᵀ·x, dx = dz·W) plus a column sum for db.
public final class Dense: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let activation: ActivationFunction
    public let inputCount: Int
    public let units: Int
    public let outputShape: [Int]
    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    private var input: Tensor?
    private var preActivation: Tensor?  // z, kept only when the activation's backward needs it
    private var output: Tensor?
    private var outputGradientBuffer: Tensor?  // dz
    private var inputGradient: Tensor?

    /// Initialized like torch's Linear: W, b ~ U(−1/√I, 1/√I).
    public init(inputCount: Int, units: Int, activation: ActivationFunction = .linear, hasBias: Bool = true,
                generator: inout SeededGenerator) {
        self.inputCount = inputCount
        self.units = units
        self.activation = activation
        outputShape = [units]
        let bound = 1 / Float(inputCount).squareRoot()
        let w = Tensor(shape: [units, inputCount])
        for i in 0..<w.count { w[i] = generator.uniform(-bound, bound) }
        weight = Parameter(name: "weight", value: w, isWeight: true)
        if hasBias {
            let b = Tensor(shape: [units])
            for i in 0..<units { b[i] = generator.uniform(-bound, bound) }
            bias = Parameter(name: "bias", value: b, isWeight: false)
        } else {
            bias = nil
        }
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        precondition(x.rowSize == inputCount, "dense expects \(inputCount) inputs per sample, got \(x.shape)")
        input = x
        let n = x.rows
        let keepsPreActivation = activation != .linear && activation.needsInput
        let z = keepsPreActivation ? ensureTensor(&preActivation, batchSize: n, sampleShape: outputShape)
            : ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        if let bias {
            // Seed every row with b, then accumulate x·Wᵀ on top (beta = 1).
            for row in 0..<n { (z.pointer + row * units).update(from: bias.value.pointer, count: units) }
        }
        BLAS.gemm(.none, .transposed, m: n, n: units, k: inputCount,
                  a: x.pointer, lda: inputCount, b: weight.value.pointer, ldb: inputCount,
                  beta: bias == nil ? 0 : 1, c: z.pointer, ldc: units)
        guard activation != .linear else { return z }
        let y = keepsPreActivation ? ensureTensor(&output, batchSize: n, sampleShape: outputShape) : z
        activation.apply(z.pointer, y.pointer, count: z.count)
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input, let y = output else { preconditionFailure("dense backward before forward") }
        let n = x.rows
        var dz = dy
        if activation != .linear {
            dz = ensureTensor(&outputGradientBuffer, batchSize: n, sampleShape: outputShape)
            let z = activation.needsInput ? preActivation! : y
            activation.backward(x: z.pointer, y: y.pointer, dy: dy.pointer, dx: dz.pointer, count: dz.count)
        }
        // dW (O, I) += dzᵀ (O, N) · x (N, I)
        BLAS.gemm(.transposed, .none, m: units, n: inputCount, k: n,
                  a: dz.pointer, lda: units, b: x.pointer, ldb: inputCount,
                  beta: 1, c: weight.gradient.pointer, ldc: inputCount)
        if let bias {
            let db = bias.gradient.pointer
            for row in 0..<n {
                let dzRow = dz.pointer + row * units
                for o in 0..<units { db[o] += dzRow[o] }
            }
        }
        guard needsInputGradient else { return nil }
        // dx (N, I) = dz (N, O) · W (O, I)
        let dx = ensureTensor(&inputGradient, shape: x.shape)
        BLAS.gemm(.none, .none, m: n, n: inputCount, k: units,
                  a: dz.pointer, lda: units, b: weight.value.pointer, ldb: inputCount,
                  beta: 0, c: dx.pointer, ldc: inputCount)
        return dx
    }
}
