import Tensors

/// The hyperparameters of `SGD`, with torch's names (in JSON) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `SGD.init` validates too.
public struct SGDHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate (torch 2.x's default, 1e-3).
    public var lr: Float = 0.001
    /// `momentum`: the factor of the velocity buffer; 0 disables it (no state).
    public var momentum: Float = 0
    /// `dampening`: the velocity takes `(1 − dampening)` of each new gradient (not on the first step).
    public var dampening: Float = 0
    /// `nesterov`: use Nesterov's look-ahead form; needs momentum > 0 and dampening 0.
    public var nesterov = false
    /// `weight_decay`: L2 penalty added to the gradient as `weightDecay · p`.
    public var weightDecay: Float = 0

    public init(lr: Float = 0.001, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    /// Every invalid hyperparameter, in field order (empty when valid). torch's checks, except that
    /// the learning rate must be > 0 rather than ≥ 0, and every number must be finite.
    public var problems: [OptimizerError] {
        var problems = [
            Check.positive(lr, "lr"),
            Check.nonNegative(momentum, "momentum"),
            Check.finite(dampening, "dampening"),
            Check.nonNegative(weightDecay, "weight_decay"),
        ].compactMap { $0 }
        if nesterov, !(momentum > 0 && dampening == 0) {
            problems.append(OptimizerError(
                field: "nesterov",
                message: "requires momentum > 0 and dampening = 0, got momentum \(momentum) and dampening \(dampening)"))
        }
        return problems
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, momentum, dampening, nesterov
        case weightDecay = "weight_decay"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = SGDHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        momentum = try container.decodeIfPresent(Float.self, forKey: .momentum) ?? defaults.momentum
        dampening = try container.decodeIfPresent(Float.self, forKey: .dampening) ?? defaults.dampening
        nesterov = try container.decodeIfPresent(Bool.self, forKey: .nesterov) ?? defaults.nesterov
        weightDecay = try container.decodeIfPresent(Float.self, forKey: .weightDecay) ?? defaults.weightDecay
    }
}

/// Stochastic gradient descent with optional (Nesterov) momentum, dampening and weight decay:
/// torch 2.x `torch.optim.SGD` (`_single_tensor_sgd`), step for step.
///
/// State: with `momentum > 0`, one momentum buffer per parameter (`"<i>.momentum_buffer"`),
/// created on the first step from that step's gradient.
public final class SGD: Optimizer {
    public let parameters: [Parameter]
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: SGDHyperparameters
    public var learningRate: Float

    /// One buffer per parameter once the first step with momentum has run; empty before.
    private var momentumBuffers: [Tensor] = []

    public init(parameters: [Parameter], hyperparameters: SGDHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.learningRate = hyperparameters.lr
    }

    /// One SGD update of every parameter.
    ///
    /// Legend, per element: p parameter, g gradient, b momentum buffer; lr learning rate,
    /// μ momentum, τ dampening, λ weight decay.
    ///
    ///     d = g + λ·p                      weight decay is an L2 term in the gradient
    ///     b = d           on the first step (no dampening then)
    ///     b = μ·b + (1 − τ)·d  afterwards
    ///     d = d + μ·b      with Nesterov,  d = b  without        (only when μ ≠ 0)
    ///     p = p − lr·d
    public func step() {
        let lr = learningRate
        let mu = hyperparameters.momentum
        let lambda = hyperparameters.weightDecay

        // Lazily created state: the buffers exist from the first step on, zero-filled.
        let isFirstStep = mu != 0 && momentumBuffers.isEmpty
        if isFirstStep {
            momentumBuffers = parameters.map { Tensor(shape: $0.shape) }
        }
        // On the first step b = μ·0 + 1·d = d exactly, torch's "buffer = clone(d)", without a branch in the loop.
        let keep = isFirstStep ? 1 : 1 - hyperparameters.dampening

        for index in parameters.indices {
            let parameter = parameters[index]
            let p = parameter.value.values
            let g = UnsafeBufferPointer(parameter.gradient.values)
            precondition(g.count == p.count, "parameter \(index) (\(parameter.name)): gradient and value sizes differ")

            if mu == 0 {
                for j in 0..<p.count {
                    p[j] -= lr * (g[j] + lambda * p[j])
                }
                continue
            }

            let b = momentumBuffers[index].values
            precondition(b.count == p.count, "parameter \(index) (\(parameter.name)) changed size since the first step")
            // One loop per form, so that each vectorizes.
            if hyperparameters.nesterov {
                for j in 0..<p.count {
                    let d = g[j] + lambda * p[j]
                    b[j] = mu * b[j] + keep * d
                    p[j] -= lr * (d + mu * b[j])
                }
            } else {
                for j in 0..<p.count {
                    let d = g[j] + lambda * p[j]
                    b[j] = mu * b[j] + keep * d
                    p[j] -= lr * b[j]
                }
            }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (index, buffer) in momentumBuffers.enumerated() {
            tensors["\(index).momentum_buffer"] = buffer
        }
        return tensors
    }

    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) {
        var reader = StateReader(tensors)
        var buffers: [Tensor] = []
        // Without momentum SGD has no state, and any tensor is refused below.
        if !tensors.isEmpty, hyperparameters.momentum != 0 {
            for (index, parameter) in parameters.enumerated() {
                buffers.append(try reader.buffer("\(index).momentum_buffer", like: parameter, index: index).clone())
            }
        }
        try reader.checkNothingElse()
        momentumBuffers = buffers
    }
}
