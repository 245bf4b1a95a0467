import Foundation
import Tensors

/// The hyperparameters of `AdamW`, with torch's names (in JSON: `lr`, `betas`, `eps`,
/// `weight_decay`, `amsgrad`) and defaults. Adam's, except that weight decay is decoupled and on by default.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `AdamW.init` validates too.
public struct AdamWHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate.
    public var lr: Float = 0.001
    /// `betas[0]`: decay of the running average of the gradient.
    public var beta1: Float = 0.9
    /// `betas[1]`: decay of the running average of the squared gradient.
    public var beta2: Float = 0.999
    /// `eps`: added to the denominator.
    public var eps: Float = 1e-8
    /// `weight_decay`: decoupled decay, each step multiplies p by `1 − lr · weightDecay`.
    public var weightDecay: Float = 0.01
    /// `amsgrad`: divide by the running maximum of the squared-gradient average.
    public var amsgrad = false

    public init(
        lr: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
        weightDecay: Float = 0.01, amsgrad: Bool = false
    ) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.amsgrad = amsgrad
    }

    /// Every invalid hyperparameter, in field order (empty when valid). torch's checks, except that
    /// the learning rate must be > 0 rather than ≥ 0, and every number must be finite.
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            Check.fraction(beta1, "betas[0]"),
            Check.fraction(beta2, "betas[1]"),
            Check.nonNegative(eps, "eps"),
            Check.nonNegative(weightDecay, "weight_decay"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, betas, eps, amsgrad
        case weightDecay = "weight_decay"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = AdamWHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        if let betas = try container.decodeIfPresent([Float].self, forKey: .betas) {
            guard betas.count == 2 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .betas, in: container, debugDescription: "must hold two numbers, got \(betas.count)")
            }
            beta1 = betas[0]
            beta2 = betas[1]
        } else {
            beta1 = defaults.beta1
            beta2 = defaults.beta2
        }
        eps = try container.decodeIfPresent(Float.self, forKey: .eps) ?? defaults.eps
        weightDecay = try container.decodeIfPresent(Float.self, forKey: .weightDecay) ?? defaults.weightDecay
        amsgrad = try container.decodeIfPresent(Bool.self, forKey: .amsgrad) ?? defaults.amsgrad
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lr, forKey: .lr)
        try container.encode([beta1, beta2], forKey: .betas)
        try container.encode(eps, forKey: .eps)
        try container.encode(weightDecay, forKey: .weightDecay)
        try container.encode(amsgrad, forKey: .amsgrad)
    }
}

/// Adam with decoupled weight decay and optional AMSGrad: torch 2.x `torch.optim.AdamW`
/// (`_single_tensor_adam` with `decoupled_weight_decay=True`), step for step.
///
/// The update is `Adam`'s with p shrunk by (1 − lr·λ) instead of λ·p added to the gradient, so
/// this class only carries AdamW's hyperparameters (decay on by default) and delegates to an
/// `Adam` made that way. State names are Adam's: `"step"`, `"<i>.exp_avg"`, `"<i>.exp_avg_sq"`,
/// `"<i>.max_exp_avg_sq"`.
public final class AdamW: Optimizer {
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: AdamWHyperparameters
    private let adam: Adam

    public init(parameters: [Parameter], hyperparameters: AdamWHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        self.hyperparameters = hyperparameters
        adam = try Adam(
            parameters: parameters,
            hyperparameters: AdamHyperparameters(
                lr: hyperparameters.lr, beta1: hyperparameters.beta1, beta2: hyperparameters.beta2, eps: hyperparameters.eps,
                weightDecay: hyperparameters.weightDecay, amsgrad: hyperparameters.amsgrad),
            decouplesWeightDecay: true)
    }

    public var parameters: [Parameter] { adam.parameters }
    /// The learning rate of the next step; schedules set it. The decoupled decay scales with it, as in torch.
    public var learningRate: Float {
        get { adam.learningRate }
        set { adam.learningRate = newValue }
    }
    /// Steps taken so far (torch's `step`); the bias corrections use it.
    public var stepCount: Int { adam.stepCount }

    public func step() { adam.step() }
    public func stateTensors() -> [String: Tensor] { adam.stateTensors() }
    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) { try adam.restoreState(from: tensors) }
}
