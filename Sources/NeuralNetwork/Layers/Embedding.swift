import Tensors

/// `embedding`: torch's Embedding, a lookup table of `numEmbeddings` vectors of size `dim`.
///
/// Shapes (legend): N batch, T positions (tokens), V = numEmbeddings, E = dim.
///   x (N, T) token indices · W (V, E) → y (N, T, E), y[n, t] = W[x[n, t]]
///
/// The engine's tensors are Float, so the indices arrive as Float values: each must be an integer in
/// 0..<V (exact in float32 up to 2²⁴). Callers check their data with `Network.invalidInput` before it
/// gets here (training data when a job starts, `/predict` rows as they arrive); forward still stops
/// the process on anything else (out of range, fractional, NaN), a broken precondition of the layer.
/// Backward adds dy[n, t] to row x[n, t] of dW (a repeated token accumulates); indices have no
/// gradient, so the input gradient is nil, or zeros when one is asked for.
public final class Embedding: Layer {
    public let weight: Parameter  // W (V, E)
    public let numEmbeddings: Int
    public let dim: Int
    public let outputShape: [Int]
    public var parameters: [Parameter] { [weight] }

    private let positions: Int  // T (the product of the sample shape)
    private var input: Tensor?
    private var output: Tensor?
    private var inputGradient: Tensor?

    /// Initialized like torch's Embedding: W ~ N(0, 1).
    /// - Parameter inputShape: the per-sample shape of the indices, [T]; the output sample is [T, dim].
    public init(numEmbeddings: Int, dim: Int, inputShape: [Int], generator: inout SeededGenerator) {
        precondition(numEmbeddings > 0 && dim > 0,
                     "embedding needs positive num_embeddings and dim, got \(numEmbeddings) and \(dim)")
        precondition(numEmbeddings <= 1 << 24, "embedding indices travel as float32: num_embeddings must be ≤ 2^24")
        precondition(!inputShape.isEmpty && inputShape.allSatisfy { $0 > 0 },
                     "embedding needs a per-sample shape [T] of positive sizes, got \(inputShape)")
        self.numEmbeddings = numEmbeddings
        self.dim = dim
        positions = inputShape.reduce(1, *)
        outputShape = inputShape + [dim]
        let w = Tensor(shape: [numEmbeddings, dim])
        for i in 0..<w.count { w[i] = generator.normal() }
        weight = Parameter(name: "weight", value: w, isWeight: true)
    }

    /// The first value that is not a valid index (an integer in 0..<numEmbeddings), with why.
    public func firstInvalidIndex(in values: UnsafeBufferPointer<Float>) -> (offset: Int, message: String)? {
        for (offset, value) in values.enumerated() {
            guard let index = Int(exactly: value), index >= 0, index < numEmbeddings else {
                return (offset, "must be a token index, an integer in 0..<\(numEmbeddings) (num_embeddings), got \(value)")
            }
        }
        return nil
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let t = positions, e = dim, v = numEmbeddings
        precondition(x.rowSize == t, "embedding expects \(t) indices per sample, got \(x.shape)")
        let n = x.rows
        input = x
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let table = weight.value.pointer
        for position in 0..<(n * t) {
            let value = x[position]
            guard let index = Int(exactly: value), index >= 0, index < v else {
                // fatalError, not preconditionFailure: -O builds drop a precondition's message.
                fatalError("""
                    embedding index \(value) at sample \(position / t), position \(position % t) \
                    is not an integer in 0..<\(v) (num_embeddings)
                    """)
            }
            (y.pointer + position * e).update(from: table + index * e, count: e)
        }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input else { preconditionFailure("embedding backward before forward") }
        let e = dim
        precondition(dy.count == x.count * e, "embedding output gradient \(dy.shape) does not match \(x.count) indices × \(e)")
        let dW = weight.gradient.pointer
        for position in 0..<x.count {
            // Validated in forward.
            let row = dW + Int(x[position]) * e, g = dy.pointer + position * e
            for k in 0..<e { row[k] += g[k] }
        }
        guard needsInputGradient else { return nil }
        let dx = ensureTensor(&inputGradient, shape: x.shape)
        dx.zero()
        return dx
    }
}
