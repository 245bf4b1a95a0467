import Foundation
import Tensors

/// The hyperparameters of `NAdam`, with torch's names (in JSON: `lr`, `betas`, `eps`,
/// `weight_decay`, `momentum_decay`, `decoupled_weight_decay`) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `NAdam.init` validates too.
public struct NAdamHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate.
    public var lr: Float = 0.002
    /// `betas[0]`: decay of the running average of the gradient, before the momentum schedule.
    public var beta1: Float = 0.9
    /// `betas[1]`: decay of the running average of the squared gradient.
    public var beta2: Float = 0.999
    /// `eps`: added to the denominator.
    public var eps: Float = 1e-8
    /// `weight_decay`: L2 penalty added to the gradient, or with `decoupled_weight_decay` a factor
    /// `1 − lr · weightDecay` on p each step (NAdamW).
    public var weightDecay: Float = 0
    /// `momentum_decay`: ψ of the momentum schedule μₜ = β1·(1 − ½·0.96^(t·ψ)).
    public var momentumDecay: Float = 0.004
    /// `decoupled_weight_decay`: decay p directly (as AdamW) rather than through the gradient.
    public var decoupledWeightDecay = false

    public init(
        lr: Float = 0.002, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0,
        momentumDecay: Float = 0.004, decoupledWeightDecay: Bool = false
    ) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.momentumDecay = momentumDecay
        self.decoupledWeightDecay = decoupledWeightDecay
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
            Check.nonNegative(momentumDecay, "momentum_decay"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, betas, eps
        case weightDecay = "weight_decay"
        case momentumDecay = "momentum_decay"
        case decoupledWeightDecay = "decoupled_weight_decay"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = NAdamHyperparameters()
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
        momentumDecay = try container.decodeIfPresent(Float.self, forKey: .momentumDecay) ?? defaults.momentumDecay
        decoupledWeightDecay = try container.decodeIfPresent(Bool.self, forKey: .decoupledWeightDecay)
            ?? defaults.decoupledWeightDecay
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lr, forKey: .lr)
        try container.encode([beta1, beta2], forKey: .betas)
        try container.encode(eps, forKey: .eps)
        try container.encode(weightDecay, forKey: .weightDecay)
        try container.encode(momentumDecay, forKey: .momentumDecay)
        try container.encode(decoupledWeightDecay, forKey: .decoupledWeightDecay)
    }
}

/// Adam with Nesterov momentum (Dozat's NAdam, with its momentum schedule) and coupled or
/// decoupled weight decay: torch 2.x `torch.optim.NAdam` (`_single_tensor_nadam`), step for step.
///
/// State, created on the first step: the step count (`"step"`) and per parameter the running
/// averages `"<i>.exp_avg"`, `"<i>.exp_avg_sq"` and the product of the momentum schedule so far,
/// `"<i>.mu_product"` (a scalar, starting at 1). All parameters step together, so their products
/// are equal; each is kept, like torch's. As in torch with Float32 parameters, the product is a
/// Float32 scalar: it is what the checkpoint stores, so a restored optimizer continues bit for bit.
public final class NAdam: Optimizer {
    public let parameters: [Parameter]
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: NAdamHyperparameters
    public var learningRate: Float
    /// Steps taken so far (torch's `step`); the bias correction and the momentum schedule use it.
    public private(set) var stepCount = 0

    /// Per-parameter state, one entry per parameter once the first step has run; empty before.
    private struct Moments {
        /// m, torch's `exp_avg`.
        let average: Tensor
        /// v, torch's `exp_avg_sq`.
        let squareAverage: Tensor
        /// Πμ, torch's `mu_product`: a one-element tensor of shape [].
        let muProduct: Tensor
    }
    private var moments: [Moments] = []

    public init(parameters: [Parameter], hyperparameters: NAdamHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.learningRate = hyperparameters.lr
    }

    /// One NAdam update of every parameter.
    ///
    /// Legend, per element: p parameter, g gradient, m and v the running averages of g and g²;
    /// lr learning rate, β1 β2 betas, ε eps, λ weight decay, ψ momentum decay, t step count,
    /// μₜ the momentum of step t, Πₜ = μ₁·…·μₜ (torch's `mu_product`).
    ///
    ///     μₜ = β1·(1 − ½·0.96^(t·ψ)),   μₜ₊₁ likewise,   Πₜ = Πₜ₋₁·μₜ
    ///     g = g + λ·p                        coupled weight decay, or
    ///     p = p · (1 − lr·λ)                 decoupled (decoupled_weight_decay)
    ///     m = m + (1 − β1)·(g − m)           (torch's lerp)
    ///     v = β2·v + (1 − β2)·g²
    ///     d = √(v / (1 − β2ᵗ)) + ε
    ///     p = p − lr·(1 − μₜ)/(1 − Πₜ) · g/d − lr·μₜ₊₁/(1 − Πₜ·μₜ₊₁) · m/d
    ///
    /// The last line is the Nesterov look-ahead: the current gradient with this step's momentum,
    /// plus the running average with the next step's.
    public func step() {
        let hp = hyperparameters
        if moments.isEmpty {  // lazily created state: zero averages, products of 1, once
            moments = parameters.map {
                Moments(
                    average: Tensor(shape: $0.shape), squareAverage: Tensor(shape: $0.shape),
                    muProduct: Tensor(shape: [], values: [1]))
            }
        }
        stepCount += 1

        // Scalars in Double, as torch computes them with Python floats.
        let t = Double(stepCount)
        let lr = Double(learningRate)
        let beta1 = Double(hp.beta1), psi = Double(hp.momentumDecay)
        let biasCorrection2 = Float(1 - pow(Double(hp.beta2), t))
        let mu = beta1 * (1 - 0.5 * pow(0.96, t * psi))
        let muNext = beta1 * (1 - 0.5 * pow(0.96, (t + 1) * psi))
        let decoupled = hp.weightDecay != 0 && hp.decoupledWeightDecay
        let lambda: Float = decoupled ? 0 : hp.weightDecay
        let decay: Float = decoupled ? Float(1 - lr * Double(hp.weightDecay)) : 1
        let eps = hp.eps, beta2 = hp.beta2, oneMinusBeta1 = 1 - hp.beta1

        for index in parameters.indices {
            let parameter = parameters[index]
            let p = parameter.value.values
            let g = UnsafeBufferPointer(parameter.gradient.values)
            let state = moments[index]
            let m = state.average.values
            let v = state.squareAverage.values
            precondition(g.count == p.count, "parameter \(index) (\(parameter.name)): gradient and value sizes differ")
            precondition(m.count == p.count, "parameter \(index) (\(parameter.name)) changed size since the first step")

            // The product is a Float32 scalar, as torch's; the coefficients use its Float32 value.
            let muProduct = Double(Float(Double(state.muProduct[0]) * mu))
            state.muProduct[0] = Float(muProduct)
            let gradientCoefficient = Float(lr * (1 - mu) / (1 - muProduct))
            let averageCoefficient = Float(lr * muNext / (1 - muProduct * muNext))

            // With decoupled decay λ = 0 here, and otherwise decay = 1: one loop serves both forms.
            // √|x| rather than √x: v ≥ 0, so it is the same number, and the loop vectorizes (see Adam).
            for j in 0..<p.count {
                let gj = g[j] + lambda * p[j]
                p[j] *= decay
                m[j] += oneMinusBeta1 * (gj - m[j])
                v[j] = beta2 * v[j] + (1 - beta2) * gj * gj
                let d = abs(v[j] / biasCorrection2).squareRoot() + eps
                p[j] -= gradientCoefficient * (gj / d)
                p[j] -= averageCoefficient * (m[j] / d)
            }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        guard stepCount > 0, !moments.isEmpty else { return [:] }
        var tensors: [String: Tensor] = ["step": Tensor(shape: [], values: [Float(stepCount)])]
        for (index, state) in moments.enumerated() {
            tensors["\(index).exp_avg"] = state.average
            tensors["\(index).exp_avg_sq"] = state.squareAverage
            tensors["\(index).mu_product"] = state.muProduct
        }
        return tensors
    }

    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) {
        guard !tensors.isEmpty else {
            moments = []
            stepCount = 0
            return
        }
        // The products are scalars, which StateReader does not read: take them out first.
        var buffers = tensors
        var products: [Float] = []
        for index in parameters.indices {
            let name = "\(index).mu_product"
            guard let tensor = buffers.removeValue(forKey: name) else {
                throw OptimizerError(field: "state.\(name)", message: "is missing")
            }
            // μ < 1 on every step, so a product of at least one step is in [0, 1).
            guard tensor.count == 1, tensor[0] >= 0, tensor[0] < 1 else {
                throw OptimizerError(field: "state.\(name)", message: "must hold one number in [0, 1), got \(tensor)")
            }
            products.append(tensor[0])
        }
        var reader = StateReader(buffers)
        let count = try reader.stepCount("step")
        var restored: [Moments] = []
        for (index, parameter) in parameters.enumerated() {
            let average = try reader.buffer("\(index).exp_avg", like: parameter, index: index)
            let squareAverage = try reader.buffer("\(index).exp_avg_sq", like: parameter, index: index)
            restored.append(Moments(
                average: average.clone(), squareAverage: squareAverage.clone(),
                muProduct: Tensor(shape: [], values: [products[index]])))
        }
        try reader.checkNothingElse()
        moments = restored
        stepCount = count
    }
}
