import Tensors

/// The hyperparameters of `RMSprop`, with torch's names (in JSON: `lr`, `alpha`, `eps`,
/// `weight_decay`, `momentum`, `centered`) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `RMSprop.init` validates too.
public struct RMSpropHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate.
    public var lr: Float = 0.01
    /// `alpha`: decay of the running average of the squared gradient.
    public var alpha: Float = 0.99
    /// `eps`: added to the denominator.
    public var eps: Float = 1e-8
    /// `weight_decay`: L2 penalty added to the gradient as `weightDecay · p`.
    public var weightDecay: Float = 0
    /// `momentum`: the factor of the momentum buffer; 0 disables it (no buffer).
    public var momentum: Float = 0
    /// `centered`: divide by an estimate of the gradient's variance rather than its second moment.
    public var centered = false

    public init(
        lr: Float = 0.01, alpha: Float = 0.99, eps: Float = 1e-8, weightDecay: Float = 0, momentum: Float = 0,
        centered: Bool = false
    ) {
        self.lr = lr
        self.alpha = alpha
        self.eps = eps
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.centered = centered
    }

    /// Every invalid hyperparameter, in field order (empty when valid). torch's checks, except that
    /// the learning rate must be > 0 rather than ≥ 0, `alpha` must also be ≤ 1 (torch only checks
    /// ≥ 0; above 1 the squared-gradient average takes negative weights and its root is NaN), and
    /// every number must be finite.
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            closedUnitInterval(alpha, "alpha"),
            Check.nonNegative(eps, "eps"),
            Check.nonNegative(weightDecay, "weight_decay"),
            Check.nonNegative(momentum, "momentum"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, alpha, eps, momentum, centered
        case weightDecay = "weight_decay"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = RMSpropHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        alpha = try container.decodeIfPresent(Float.self, forKey: .alpha) ?? defaults.alpha
        eps = try container.decodeIfPresent(Float.self, forKey: .eps) ?? defaults.eps
        weightDecay = try container.decodeIfPresent(Float.self, forKey: .weightDecay) ?? defaults.weightDecay
        momentum = try container.decodeIfPresent(Float.self, forKey: .momentum) ?? defaults.momentum
        centered = try container.decodeIfPresent(Bool.self, forKey: .centered) ?? defaults.centered
    }
}

/// A value in [0, 1] (`alpha`). A private copy: `Check` has only the half-open `fraction`.
private func closedUnitInterval(_ value: Float, _ field: String) -> OptimizerError? {
    guard value >= 0, value <= 1 else { return OptimizerError(field: field, message: "must be in [0, 1], got \(value)") }
    return nil
}

/// RMSprop with optional momentum, centering and coupled (L2) weight decay: torch 2.x
/// `torch.optim.RMSprop` (`_single_tensor_rmsprop`), step for step.
///
/// State, created on the first step: the step count (`"step"`, kept as torch does although the
/// update does not use it) and per parameter the running average of the squared gradient
/// `"<i>.square_avg"`, with momentum > 0 the buffer `"<i>.momentum_buffer"`, and when centered the
/// running average of the gradient `"<i>.grad_avg"`, all zero-initialized.
public final class RMSprop: Optimizer {
    public let parameters: [Parameter]
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: RMSpropHyperparameters
    public var learningRate: Float
    /// Steps taken so far (torch's `step`).
    public private(set) var stepCount = 0

    /// Per-parameter state, one entry per parameter once the first step has run; empty before.
    private struct Averages {
        /// v, torch's `square_avg`.
        let squareAverage: Tensor
        /// b, torch's `momentum_buffer` (momentum > 0 only).
        let momentumBuffer: Tensor?
        /// m, torch's `grad_avg` (centered only).
        let average: Tensor?
    }
    private var averages: [Averages] = []

    public init(parameters: [Parameter], hyperparameters: RMSpropHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.learningRate = hyperparameters.lr
    }

    /// One RMSprop update of every parameter.
    ///
    /// Legend, per element: p parameter, g gradient, v running average of g², m running average of g
    /// (centered), b momentum buffer; lr learning rate, α alpha, ε eps, λ weight decay, μ momentum.
    ///
    ///     g = g + λ·p                        weight decay as an L2 term
    ///     v = α·v + (1 − α)·g²
    ///     m = m + (1 − α)·(g − m)            centered only (torch's lerp)
    ///     d = √(v − m²) + ε   centered,   d = √v + ε   otherwise
    ///     b = μ·b + g/d,  p = p − lr·b       with momentum (μ > 0)
    ///     p = p − lr·g/d                     without
    ///
    /// As in torch, v − m² is not clamped: should rounding make it negative, the step is NaN.
    public func step() {
        let hp = hyperparameters
        if averages.isEmpty {  // lazily created state, zero-initialized, once
            averages = parameters.map {
                Averages(
                    squareAverage: Tensor(shape: $0.shape),
                    momentumBuffer: hp.momentum > 0 ? Tensor(shape: $0.shape) : nil,
                    average: hp.centered ? Tensor(shape: $0.shape) : nil)
            }
        }
        stepCount += 1
        let lr = learningRate, alpha = hp.alpha, eps = hp.eps, lambda = hp.weightDecay, mu = hp.momentum

        for index in parameters.indices {
            let parameter = parameters[index]
            let p = parameter.value.values
            let g = UnsafeBufferPointer(parameter.gradient.values)
            let state = averages[index]
            let v = state.squareAverage.values
            precondition(g.count == p.count, "parameter \(index) (\(parameter.name)): gradient and value sizes differ")
            precondition(v.count == p.count, "parameter \(index) (\(parameter.name)) changed size since the first step")

            // One loop per form, so that each vectorizes. √|v| rather than √v where v ≥ 0 (see Adam).
            switch (state.average?.values, state.momentumBuffer?.values) {
            case (nil, nil):
                for j in 0..<p.count {
                    let gj = g[j] + lambda * p[j]
                    v[j] = alpha * v[j] + (1 - alpha) * gj * gj
                    p[j] -= lr * (gj / (abs(v[j]).squareRoot() + eps))
                }
            case (nil, let b?):
                for j in 0..<p.count {
                    let gj = g[j] + lambda * p[j]
                    v[j] = alpha * v[j] + (1 - alpha) * gj * gj
                    b[j] = mu * b[j] + gj / (abs(v[j]).squareRoot() + eps)
                    p[j] -= lr * b[j]
                }
            case (let m?, nil):
                for j in 0..<p.count {
                    let gj = g[j] + lambda * p[j]
                    v[j] = alpha * v[j] + (1 - alpha) * gj * gj
                    m[j] += (1 - alpha) * (gj - m[j])
                    p[j] -= lr * (gj / ((v[j] - m[j] * m[j]).squareRoot() + eps))
                }
            case (let m?, let b?):
                for j in 0..<p.count {
                    let gj = g[j] + lambda * p[j]
                    v[j] = alpha * v[j] + (1 - alpha) * gj * gj
                    m[j] += (1 - alpha) * (gj - m[j])
                    b[j] = mu * b[j] + gj / ((v[j] - m[j] * m[j]).squareRoot() + eps)
                    p[j] -= lr * b[j]
                }
            }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        guard stepCount > 0, !averages.isEmpty else { return [:] }
        var tensors: [String: Tensor] = ["step": Tensor(shape: [], values: [Float(stepCount)])]
        for (index, state) in averages.enumerated() {
            tensors["\(index).square_avg"] = state.squareAverage
            if let momentumBuffer = state.momentumBuffer { tensors["\(index).momentum_buffer"] = momentumBuffer }
            if let average = state.average { tensors["\(index).grad_avg"] = average }
        }
        return tensors
    }

    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) {
        guard !tensors.isEmpty else {
            averages = []
            stepCount = 0
            return
        }
        let hp = hyperparameters
        var reader = StateReader(tensors)
        let count = try reader.stepCount("step")
        var restored: [Averages] = []
        for (index, parameter) in parameters.enumerated() {
            let squareAverage = try reader.buffer("\(index).square_avg", like: parameter, index: index)
            let momentumBuffer = hp.momentum > 0
                ? try reader.buffer("\(index).momentum_buffer", like: parameter, index: index) : nil
            let average = hp.centered ? try reader.buffer("\(index).grad_avg", like: parameter, index: index) : nil
            restored.append(Averages(
                squareAverage: squareAverage.clone(), momentumBuffer: momentumBuffer?.clone(), average: average?.clone()))
        }
        try reader.checkNothingElse()
        averages = restored
        stepCount = count
    }
}
