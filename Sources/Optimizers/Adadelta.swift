import Tensors

/// The hyperparameters of `Adadelta`, with torch's names (in JSON: `lr`, `rho`, `eps`,
/// `weight_decay`) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `Adadelta.init` validates too.
public struct AdadeltaHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate, a factor on the computed update (1 in the paper).
    public var lr: Float = 1.0
    /// `rho`: decay of the running averages of the squared gradient and the squared update.
    public var rho: Float = 0.9
    /// `eps`: added inside both square roots; it also sets the size of the first steps.
    public var eps: Float = 1e-6
    /// `weight_decay`: L2 penalty added to the gradient as `weightDecay · p`.
    public var weightDecay: Float = 0

    public init(lr: Float = 1.0, rho: Float = 0.9, eps: Float = 1e-6, weightDecay: Float = 0) {
        self.lr = lr
        self.rho = rho
        self.eps = eps
        self.weightDecay = weightDecay
    }

    /// Every invalid hyperparameter, in field order (empty when valid). torch's checks, except that
    /// the learning rate must be > 0 rather than ≥ 0, and every number must be finite.
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            closedUnitInterval(rho, "rho"),
            Check.nonNegative(eps, "eps"),
            Check.nonNegative(weightDecay, "weight_decay"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, rho, eps
        case weightDecay = "weight_decay"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = AdadeltaHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        rho = try container.decodeIfPresent(Float.self, forKey: .rho) ?? defaults.rho
        eps = try container.decodeIfPresent(Float.self, forKey: .eps) ?? defaults.eps
        weightDecay = try container.decodeIfPresent(Float.self, forKey: .weightDecay) ?? defaults.weightDecay
    }
}

/// A value in [0, 1] (torch's check of `rho`). A private copy: `Check` has only the half-open `fraction`.
private func closedUnitInterval(_ value: Float, _ field: String) -> OptimizerError? {
    guard value >= 0, value <= 1 else { return OptimizerError(field: field, message: "must be in [0, 1], got \(value)") }
    return nil
}

/// Adadelta with coupled (L2) weight decay: torch 2.x `torch.optim.Adadelta`
/// (`_single_tensor_adadelta`), step for step.
///
/// State, created on the first step: the step count (`"step"`, kept as torch does although the
/// update does not use it) and per parameter the running averages of the squared gradient
/// `"<i>.square_avg"` and of the squared update `"<i>.acc_delta"`, zero-initialized.
public final class Adadelta: Optimizer {
    public let parameters: [Parameter]
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: AdadeltaHyperparameters
    public var learningRate: Float
    /// Steps taken so far (torch's `step`).
    public private(set) var stepCount = 0

    /// Per-parameter state, one entry per parameter once the first step has run; empty before.
    private struct Averages {
        /// v, torch's `square_avg`.
        let squareGradient: Tensor
        /// u, torch's `acc_delta`.
        let squareUpdate: Tensor
    }
    private var averages: [Averages] = []

    public init(parameters: [Parameter], hyperparameters: AdadeltaHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.learningRate = hyperparameters.lr
    }

    /// One Adadelta update of every parameter.
    ///
    /// Legend, per element: p parameter, g gradient, v running average of g², u running average of
    /// the squared update d²; lr learning rate, ρ rho, ε eps, λ weight decay.
    ///
    ///     g = g + λ·p                        weight decay as an L2 term
    ///     v = ρ·v + (1 − ρ)·g²
    ///     d = √(u + ε) / √(v + ε) · g        the update, in the units of p
    ///     u = ρ·u + (1 − ρ)·d²
    ///     p = p − lr·d
    public func step() {
        if averages.isEmpty {  // lazily created state, zero-initialized, once
            averages = parameters.map { Averages(squareGradient: Tensor(shape: $0.shape), squareUpdate: Tensor(shape: $0.shape)) }
        }
        stepCount += 1
        let lr = learningRate, rho = hyperparameters.rho, eps = hyperparameters.eps
        let lambda = hyperparameters.weightDecay

        for index in parameters.indices {
            let parameter = parameters[index]
            let p = parameter.value.values
            let g = UnsafeBufferPointer(parameter.gradient.values)
            let v = averages[index].squareGradient.values
            let u = averages[index].squareUpdate.values
            precondition(g.count == p.count, "parameter \(index) (\(parameter.name)): gradient and value sizes differ")
            precondition(v.count == p.count, "parameter \(index) (\(parameter.name)) changed size since the first step")

            // √|x| rather than √x: both sums are ≥ 0, so it is the same number, and the loop vectorizes (see Adam).
            for j in 0..<p.count {
                let gj = g[j] + lambda * p[j]
                v[j] = rho * v[j] + (1 - rho) * gj * gj
                let d = abs(u[j] + eps).squareRoot() / abs(v[j] + eps).squareRoot() * gj
                u[j] = rho * u[j] + (1 - rho) * d * d
                p[j] -= lr * d
            }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        guard stepCount > 0, !averages.isEmpty else { return [:] }
        var tensors: [String: Tensor] = ["step": Tensor(shape: [], values: [Float(stepCount)])]
        for (index, state) in averages.enumerated() {
            tensors["\(index).square_avg"] = state.squareGradient
            tensors["\(index).acc_delta"] = state.squareUpdate
        }
        return tensors
    }

    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) {
        guard !tensors.isEmpty else {
            averages = []
            stepCount = 0
            return
        }
        var reader = StateReader(tensors)
        let count = try reader.stepCount("step")
        var restored: [Averages] = []
        for (index, parameter) in parameters.enumerated() {
            let squareGradient = try reader.buffer("\(index).square_avg", like: parameter, index: index)
            let squareUpdate = try reader.buffer("\(index).acc_delta", like: parameter, index: index)
            restored.append(Averages(squareGradient: squareGradient.clone(), squareUpdate: squareUpdate.clone()))
        }
        try reader.checkNothingElse()
        averages = restored
        stepCount = count
    }
}
