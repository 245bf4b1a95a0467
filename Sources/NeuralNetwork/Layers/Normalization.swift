import Tensors

/// `batch_norm`: torch's BatchNorm1d / BatchNorm2d. Each channel is normalized by statistics taken over
/// the batch and every spatial position, then scaled and shifted: y = γ·(x − μ)/√(σ² + ε) + β.
///
/// Shapes (legend): N batch, C channels (features), S positions per channel (H·W; 1 for a vector).
///   sample shape [F]       → x (N, F)        BatchNorm1d, statistics over N
///   sample shape [C, L]    → x (N, C, L)     BatchNorm1d on sequences, statistics over N·L
///   sample shape [C, H, W] → x (N, C, H, W)  BatchNorm2d, statistics over N·H·W
///   viewed as x (N, C, S) · γ, β, running_mean, running_var (C) → y (N, C, S); M = N·S values per channel.
///
/// Training: μ and the biased σ² of the batch normalize; the running statistics move by `momentum`
/// towards μ and the *unbiased* σ²·M/(M − 1), as torch: r ← (1 − momentum)·r + momentum·batch;
/// `num_batches_tracked` counts the steps. Eval: running_mean/running_var normalize, nothing changes.
/// Backward after a training forward is the full batch-norm gradient (μ and σ² depend on every x);
/// after an eval forward it is the per-channel affine map's, dx = γ/√(running_var + ε)·dy.
public final class BatchNorm: Layer {
    public let weight: Parameter  // γ (C), initialized to 1
    public let bias: Parameter  // β (C), initialized to 0
    /// Buffers saved with the model under torch's names.
    public let runningMean: Tensor  // (C), initialized to 0
    public let runningVar: Tensor  // (C), initialized to 1
    /// Training forwards seen so far, torch's int64 scalar held as a float32 0-d tensor (shape [], one value).
    public let numBatchesTracked: Tensor
    public let channels: Int
    /// Positions per channel in one sample (H·W, L, or 1).
    public let spatialSize: Int
    public let eps: Float
    public let momentum: Float
    public let outputShape: [Int]
    public var parameters: [Parameter] { [weight, bias] }
    public var buffers: [NamedTensor] {
        [NamedTensor(name: "running_mean", tensor: runningMean),
         NamedTensor(name: "running_var", tensor: runningVar),
         NamedTensor(name: "num_batches_tracked", tensor: numBatchesTracked)]
    }

    private var input: Tensor?
    private var normalized: Tensor?  // x̂ (N, C, S)
    private var output: Tensor?
    private var inputGradient: Tensor?
    private let inverseStd: Tensor  // 1/√(σ² + ε) per channel of the last forward (batch or running)
    private var wasTraining = false

    /// - Parameter inputShape: the per-sample shape, channels first: [F], [C, L] or [C, H, W].
    public init(inputShape: [Int], eps: Float = 1e-5, momentum: Float = 0.1) {
        precondition(!inputShape.isEmpty && inputShape.allSatisfy { $0 > 0 },
                     "batch_norm needs a per-sample shape [F] or [C, H, W] of positive sizes, got \(inputShape)")
        precondition(eps > 0, "batch_norm eps must be positive, got \(eps)")
        precondition((0...1).contains(momentum), "batch_norm momentum must be in [0, 1], got \(momentum)")
        channels = inputShape[0]
        spatialSize = inputShape.dropFirst().reduce(1, *)
        self.eps = eps
        self.momentum = momentum
        outputShape = inputShape
        weight = Parameter(name: "weight", value: Tensor(shape: [channels], repeating: 1), isWeight: false)
        bias = Parameter(name: "bias", value: Tensor(shape: [channels]), isWeight: false)
        runningMean = Tensor(shape: [channels])
        runningVar = Tensor(shape: [channels], repeating: 1)
        numBatchesTracked = Tensor(shape: [])
        inverseStd = Tensor(shape: [channels])
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let s = spatialSize, c = channels
        precondition(x.rowSize == c * s, "batch_norm expects samples of shape \(outputShape), got \(x.shape)")
        let n = x.rows
        input = x
        wasTraining = isTraining
        let xhat = ensureTensor(&normalized, batchSize: n, sampleShape: outputShape)
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let xp = x.pointer, xh = xhat.pointer, yp = y.pointer
        let gamma = weight.value.pointer, beta = bias.value.pointer, invStd = inverseStd.pointer
        let mean = runningMean.pointer, variance = runningVar.pointer
        let m = n * s
        if isTraining && m <= 1 {
            // fatalError, not precondition: -O builds drop a precondition's message. torch refuses the same.
            fatalError("batch_norm needs more than one value per channel while training, got input \(x.shape)")
        }
        for channel in 0..<c {
            var mu: Float, inv: Float
            if isTraining {
                // Two passes in Double: the mean, then the sum of squared deviations.
                var sum = 0.0
                for i in 0..<n {
                    let p = xp + (i * c + channel) * s
                    for k in 0..<s { sum += Double(p[k]) }
                }
                let batchMean = sum / Double(m)
                var squares = 0.0
                for i in 0..<n {
                    let p = xp + (i * c + channel) * s
                    for k in 0..<s { let d = Double(p[k]) - batchMean; squares += d * d }
                }
                let momentum = Double(self.momentum)
                mean[channel] = Float((1 - momentum) * Double(mean[channel]) + momentum * batchMean)
                variance[channel] = Float((1 - momentum) * Double(variance[channel])
                                          + momentum * squares / Double(m - 1))
                mu = Float(batchMean)
                inv = Float(1 / (squares / Double(m) + Double(eps)).squareRoot())
            } else {
                mu = mean[channel]
                inv = 1 / (variance[channel] + eps).squareRoot()
            }
            invStd[channel] = inv
            let g = gamma[channel], b = beta[channel]
            for i in 0..<n {
                let offset = (i * c + channel) * s
                let p = xp + offset, h = xh + offset, q = yp + offset
                for k in 0..<s {
                    let v = (p[k] - mu) * inv
                    h[k] = v
                    q[k] = g * v + b
                }
            }
        }
        if isTraining { numBatchesTracked[0] += 1 }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input, let xhat = normalized else { preconditionFailure("batch_norm backward before forward") }
        let s = spatialSize, c = channels, n = x.rows
        precondition(dy.count == x.count, "batch_norm output gradient \(dy.shape) does not match the input \(x.shape)")
        let dx = needsInputGradient ? ensureTensor(&inputGradient, batchSize: n, sampleShape: outputShape) : nil
        let dyp = dy.pointer, xh = xhat.pointer
        let gamma = weight.value.pointer, invStd = inverseStd.pointer
        let dGamma = weight.gradient.pointer, dBeta = bias.gradient.pointer
        let m = Double(n * s)
        for channel in 0..<c {
            // Σ dy and Σ dy·x̂ over the channel's N·S values: dβ and dγ, and the two terms of dx.
            var sumDy = 0.0, sumDyXhat = 0.0
            for i in 0..<n {
                let offset = (i * c + channel) * s
                let g = dyp + offset, h = xh + offset
                for k in 0..<s {
                    sumDy += Double(g[k])
                    sumDyXhat += Double(g[k]) * Double(h[k])
                }
            }
            dGamma[channel] += Float(sumDyXhat)
            dBeta[channel] += Float(sumDy)
            guard let dx else { continue }
            let scale = gamma[channel] * invStd[channel]
            let dxp = dx.pointer
            if wasTraining {
                // dx = γ/√(σ² + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))
                let meanDy = Float(sumDy / m), meanDyXhat = Float(sumDyXhat / m)
                for i in 0..<n {
                    let offset = (i * c + channel) * s
                    let g = dyp + offset, h = xh + offset, d = dxp + offset
                    for k in 0..<s { d[k] = scale * (g[k] - meanDy - h[k] * meanDyXhat) }
                }
            } else {
                for i in 0..<n {
                    let offset = (i * c + channel) * s
                    let g = dyp + offset, d = dxp + offset
                    for k in 0..<s { d[k] = scale * g[k] }
                }
            }
        }
        return dx
    }
}

/// `layer_norm`: torch's LayerNorm. Each sample is normalized over its trailing `normalizedShape`
/// dimensions with its own mean and biased variance, then scaled and shifted element-wise:
/// y = γ ⊙ (x − μ)/√(σ² + ε) + β. Training and eval compute the same thing; there are no buffers.
///
/// Shapes (legend): N batch, G groups per sample, D = ∏ normalizedShape values per group.
///   sample shape = leading dims ++ normalizedShape, so x (N, …) is viewed as (N·G, D)
///   γ, β have shape normalizedShape (D values)            → y with x's shape
///   normalizedShape = the whole sample shape (default): G = 1, one mean per sample
///   normalizedShape = [last dimension]: G = ∏ leading dims, e.g. each time step of a (T, F) sample
public final class LayerNorm: Layer {
    public let weight: Parameter  // γ (normalizedShape), initialized to 1
    public let bias: Parameter  // β (normalizedShape), initialized to 0
    public let normalizedShape: [Int]
    public let eps: Float
    public let outputShape: [Int]
    public var parameters: [Parameter] { [weight, bias] }

    /// D: values normalized together.
    public let groupSize: Int
    /// G: normalized groups in one sample.
    public let groupsPerSample: Int

    private var input: Tensor?
    private var normalized: Tensor?  // x̂, x's shape
    private var output: Tensor?
    private var inverseStd: Tensor?  // (N, G)
    private let inverseStdSampleShape: [Int]  // [G], kept so forward builds no array
    private var inputGradient: Tensor?

    /// - Parameters:
    ///   - inputShape: the per-sample shape.
    ///   - normalizedShape: trailing dimensions of `inputShape` to normalize over (torch's
    ///     `normalized_shape`); nil normalizes over the whole sample, `[inputShape.last!]` over the last axis.
    public init(inputShape: [Int], normalizedShape: [Int]? = nil, eps: Float = 1e-5) {
        precondition(!inputShape.isEmpty && inputShape.allSatisfy { $0 > 0 },
                     "layer_norm needs a per-sample shape of positive sizes, got \(inputShape)")
        let normalizedShape = normalizedShape ?? inputShape
        precondition(!normalizedShape.isEmpty && normalizedShape.count <= inputShape.count
                     && Array(inputShape.suffix(normalizedShape.count)) == normalizedShape,
                     "layer_norm normalizes over trailing dimensions of the sample \(inputShape), got \(normalizedShape)")
        precondition(eps > 0, "layer_norm eps must be positive, got \(eps)")
        self.normalizedShape = normalizedShape
        self.eps = eps
        outputShape = inputShape
        groupSize = normalizedShape.reduce(1, *)
        groupsPerSample = inputShape.reduce(1, *) / groupSize
        inverseStdSampleShape = [groupsPerSample]
        weight = Parameter(name: "weight", value: Tensor(shape: normalizedShape, repeating: 1), isWeight: false)
        bias = Parameter(name: "bias", value: Tensor(shape: normalizedShape), isWeight: false)
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let d = groupSize, groupsPerSample = groupsPerSample
        precondition(x.rowSize == d * groupsPerSample, "layer_norm expects samples of shape \(outputShape), got \(x.shape)")
        let n = x.rows
        input = x
        let xhat = ensureTensor(&normalized, batchSize: n, sampleShape: outputShape)
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let inv = ensureTensor(&inverseStd, batchSize: n, sampleShape: inverseStdSampleShape)
        let gamma = weight.value.pointer, beta = bias.value.pointer
        for group in 0..<(n * groupsPerSample) {
            let p = x.pointer + group * d, h = xhat.pointer + group * d, q = y.pointer + group * d
            var sum = 0.0
            for j in 0..<d { sum += Double(p[j]) }
            let mean = sum / Double(d)
            var squares = 0.0
            for j in 0..<d { let v = Double(p[j]) - mean; squares += v * v }
            let invStd = Float(1 / (squares / Double(d) + Double(eps)).squareRoot())
            let mu = Float(mean)
            inv[group] = invStd
            for j in 0..<d {
                let v = (p[j] - mu) * invStd
                h[j] = v
                q[j] = gamma[j] * v + beta[j]
            }
        }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input, let xhat = normalized, let inv = inverseStd else {
            preconditionFailure("layer_norm backward before forward")
        }
        precondition(dy.count == x.count, "layer_norm output gradient \(dy.shape) does not match the input \(x.shape)")
        let d = groupSize, n = x.rows
        let dx = needsInputGradient ? ensureTensor(&inputGradient, batchSize: n, sampleShape: outputShape) : nil
        let gamma = weight.value.pointer
        let dGamma = weight.gradient.pointer, dBeta = bias.gradient.pointer
        for group in 0..<(n * groupsPerSample) {
            let g = dy.pointer + group * d, h = xhat.pointer + group * d
            var sumDxhat = 0.0, sumDxhatXhat = 0.0
            for j in 0..<d {
                dGamma[j] += g[j] * h[j]
                dBeta[j] += g[j]
                let dxhat = Double(g[j] * gamma[j])
                sumDxhat += dxhat
                sumDxhatXhat += dxhat * Double(h[j])
            }
            guard let dx else { continue }
            // dx = 1/√(σ² + ε) · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = γ ⊙ dy
            let invStd = inv[group]
            let meanDxhat = Float(sumDxhat / Double(d)), meanDxhatXhat = Float(sumDxhatXhat / Double(d))
            let out = dx.pointer + group * d
            for j in 0..<d { out[j] = invStd * (g[j] * gamma[j] - meanDxhat - h[j] * meanDxhatXhat) }
        }
        return dx
    }
}
