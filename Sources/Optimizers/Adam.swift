import Foundation
import Tensors

/// The hyperparameters of `Adam`, with torch's names (in JSON: `lr`, `betas`, `eps`,
/// `weight_decay`, `amsgrad`) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `Adam.init` validates too.
public struct AdamHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate.
    public var lr: Float = 0.001
    /// `betas[0]`: decay of the running average of the gradient.
    public var beta1: Float = 0.9
    /// `betas[1]`: decay of the running average of the squared gradient.
    public var beta2: Float = 0.999
    /// `eps`: added to the denominator.
    public var eps: Float = 1e-8
    /// `weight_decay`: L2 penalty added to the gradient (coupled, as torch's Adam; not AdamW).
    public var weightDecay: Float = 0
    /// `amsgrad`: divide by the running maximum of the squared-gradient average.
    public var amsgrad = false

    public init(
        lr: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
        weightDecay: Float = 0, amsgrad: Bool = false
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
        let defaults = AdamHyperparameters()
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

/// Adam with optional AMSGrad and coupled (L2) weight decay: torch 2.x `torch.optim.Adam`
/// (`_single_tensor_adam`), step for step.
///
/// State, created on the first step: the step count (`"step"`) and per parameter the running
/// averages `"<i>.exp_avg"`, `"<i>.exp_avg_sq"` and, with AMSGrad, `"<i>.max_exp_avg_sq"`.
/// (torch keeps one step count per parameter, `"<i>.step"`; here all parameters step together,
/// so one count serves them all. It is stored as a Float32 scalar: exact up to 2^24 steps.)
public final class Adam: Optimizer {
    public let parameters: [Parameter]
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: AdamHyperparameters
    public var learningRate: Float
    /// Steps taken so far (torch's `step`); the bias corrections use it.
    public private(set) var stepCount = 0

    /// Per-parameter state, one entry per parameter once the first step has run; empty before.
    private struct Moments {
        /// m, torch's `exp_avg`.
        let average: Tensor
        /// v, torch's `exp_avg_sq`.
        let squareAverage: Tensor
        /// max of v over the steps, torch's `max_exp_avg_sq` (AMSGrad only).
        let maxSquareAverage: Tensor?
    }
    private var moments: [Moments] = []

    /// Whether `weightDecay` is an L2 term in the gradient (Adam) or a shrink of p (AdamW).
    let decouplesWeightDecay: Bool

    public convenience init(parameters: [Parameter], hyperparameters: AdamHyperparameters) throws(OptimizerError) {
        try self.init(parameters: parameters, hyperparameters: hyperparameters, decouplesWeightDecay: false)
    }

    /// AdamW is this update with the weight decay decoupled: `AdamW` wraps one made so.
    init(parameters: [Parameter], hyperparameters: AdamHyperparameters, decouplesWeightDecay: Bool) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.learningRate = hyperparameters.lr
        self.decouplesWeightDecay = decouplesWeightDecay
    }

    /// One Adam update of every parameter.
    ///
    /// Legend, per element: p parameter, g gradient, m and v the running averages of g and g²,
    /// v̂ their max (AMSGrad); lr learning rate, β1 β2 betas, ε eps, λ weight decay, t step count.
    ///
    ///     g = g + λ·p                        Adam: weight decay as an L2 term
    ///     p = p · (1 − lr·λ)                 AdamW: decoupled decay, shrinks p, never enters m or v
    ///     m = m + (1 − β1)·(g − m)           = β1·m + (1 − β1)·g   (torch's lerp)
    ///     v = β2·v + (1 − β2)·g²
    ///     v̂ = max(v̂, v)                      AMSGrad; otherwise v̂ = v
    ///     p = p − lr/(1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + ε)
    public func step() {
        let hp = hyperparameters
        if moments.isEmpty {  // lazily created state, zero-initialized, once
            moments = parameters.map {
                Moments(
                    average: Tensor(shape: $0.shape), squareAverage: Tensor(shape: $0.shape),
                    maxSquareAverage: hp.amsgrad ? Tensor(shape: $0.shape) : nil)
            }
        }
        stepCount += 1

        // Bias corrections in Double, as torch computes them with Python floats.
        let t = Double(stepCount)
        let biasCorrection1 = 1 - pow(Double(hp.beta1), t)
        let biasCorrection2 = 1 - pow(Double(hp.beta2), t)
        let stepSize = Float(Double(learningRate) / biasCorrection1)
        let biasCorrection2Root = Float(biasCorrection2.squareRoot())
        let beta1 = hp.beta1, beta2 = hp.beta2, eps = hp.eps
        // One loop for both: Adam shrinks by 1 (exact), AdamW adds 0·p to the gradient.
        let lambda = decouplesWeightDecay ? 0 : hp.weightDecay
        let decay = decouplesWeightDecay ? Float(1 - Double(learningRate) * Double(hp.weightDecay)) : 1

        for index in parameters.indices {
            let parameter = parameters[index]
            let p = parameter.value.values
            let g = UnsafeBufferPointer(parameter.gradient.values)
            let state = moments[index]
            let m = state.average.values
            let v = state.squareAverage.values
            precondition(g.count == p.count, "parameter \(index) (\(parameter.name)): gradient and value sizes differ")
            precondition(m.count == p.count, "parameter \(index) (\(parameter.name)) changed size since the first step")

            // √|v| rather than √v: v ≥ 0 so it is the same number, but it tells LLVM the argument
            // is not negative, which drops glibc's errno path of sqrtf and lets the loop vectorize (≈4×).
            if let maxSquareAverage = state.maxSquareAverage {
                let vMax = maxSquareAverage.values
                for j in 0..<p.count {
                    let gj = g[j] + lambda * p[j]
                    p[j] *= decay
                    m[j] += (1 - beta1) * (gj - m[j])
                    v[j] = beta2 * v[j] + (1 - beta2) * gj * gj
                    vMax[j] = max(vMax[j], v[j])
                    p[j] -= stepSize * m[j] / (abs(vMax[j]).squareRoot() / biasCorrection2Root + eps)
                }
            } else {
                for j in 0..<p.count {
                    let gj = g[j] + lambda * p[j]
                    p[j] *= decay
                    m[j] += (1 - beta1) * (gj - m[j])
                    v[j] = beta2 * v[j] + (1 - beta2) * gj * gj
                    p[j] -= stepSize * m[j] / (abs(v[j]).squareRoot() / biasCorrection2Root + eps)
                }
            }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        guard stepCount > 0, !moments.isEmpty else { return [:] }
        var tensors: [String: Tensor] = ["step": Tensor(shape: [], values: [Float(stepCount)])]
        for (index, state) in moments.enumerated() {
            tensors["\(index).exp_avg"] = state.average
            tensors["\(index).exp_avg_sq"] = state.squareAverage
            // √|v| rather than √v: v ≥ 0 so it is the same number, but it tells LLVM the argument
            // is not negative, which drops glibc's errno path of sqrtf and lets the loop vectorize (≈4×).
            if let maxSquareAverage = state.maxSquareAverage {
                tensors["\(index).max_exp_avg_sq"] = maxSquareAverage
            }
        }
        return tensors
    }

    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) {
        guard !tensors.isEmpty else {
            moments = []
            stepCount = 0
            return
        }
        var reader = StateReader(tensors)
        let count = try reader.stepCount("step")
        var restored: [Moments] = []
        for (index, parameter) in parameters.enumerated() {
            let average = try reader.buffer("\(index).exp_avg", like: parameter, index: index)
            let squareAverage = try reader.buffer("\(index).exp_avg_sq", like: parameter, index: index)
            let maxSquareAverage = hyperparameters.amsgrad
                ? try reader.buffer("\(index).max_exp_avg_sq", like: parameter, index: index) : nil
            restored.append(Moments(
                average: average.clone(), squareAverage: squareAverage.clone(),
                maxSquareAverage: maxSquareAverage?.clone()))
        }
        try reader.checkNothingElse()
        moments = restored
        stepCount = count
    }
}
