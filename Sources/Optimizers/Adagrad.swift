import Tensors

/// The hyperparameters of `Adagrad`, with torch's names (in JSON: `lr`, `lr_decay`, `weight_decay`,
/// `initial_accumulator_value`, `eps`) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `Adagrad.init` validates too.
public struct AdagradHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the initial learning rate.
    public var lr: Float = 0.01
    /// `lr_decay`: step t uses `lr / (1 + (t − 1)·lr_decay)`.
    public var lrDecay: Float = 0
    /// `weight_decay`: L2 penalty added to the gradient as `weightDecay · p`.
    public var weightDecay: Float = 0
    /// `initial_accumulator_value`: the value every sum of squared gradients starts from.
    public var initialAccumulatorValue: Float = 0
    /// `eps`: added to the denominator.
    public var eps: Float = 1e-10

    public init(
        lr: Float = 0.01, lrDecay: Float = 0, weightDecay: Float = 0, initialAccumulatorValue: Float = 0,
        eps: Float = 1e-10
    ) {
        self.lr = lr
        self.lrDecay = lrDecay
        self.weightDecay = weightDecay
        self.initialAccumulatorValue = initialAccumulatorValue
        self.eps = eps
    }

    /// Every invalid hyperparameter, in field order (empty when valid). torch's checks, except that
    /// the learning rate must be > 0 rather than ≥ 0, and every number must be finite.
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            Check.nonNegative(lrDecay, "lr_decay"),
            Check.nonNegative(weightDecay, "weight_decay"),
            Check.nonNegative(initialAccumulatorValue, "initial_accumulator_value"),
            Check.nonNegative(eps, "eps"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, eps
        case lrDecay = "lr_decay"
        case weightDecay = "weight_decay"
        case initialAccumulatorValue = "initial_accumulator_value"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = AdagradHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        lrDecay = try container.decodeIfPresent(Float.self, forKey: .lrDecay) ?? defaults.lrDecay
        weightDecay = try container.decodeIfPresent(Float.self, forKey: .weightDecay) ?? defaults.weightDecay
        initialAccumulatorValue = try container.decodeIfPresent(Float.self, forKey: .initialAccumulatorValue)
            ?? defaults.initialAccumulatorValue
        eps = try container.decodeIfPresent(Float.self, forKey: .eps) ?? defaults.eps
    }
}

/// Adagrad with learning-rate decay and coupled (L2) weight decay: torch 2.x `torch.optim.Adagrad`
/// (`_single_tensor_adagrad`, dense gradients), step for step.
///
/// State, created on the first step: the step count (`"step"`) and per parameter the running sum
/// of squared gradients `"<i>.sum"`, starting at `initial_accumulator_value`. (torch keeps one step
/// count per parameter; here all parameters step together, so one count serves them all, stored as
/// a Float32 scalar: exact up to 2^24 steps.)
public final class Adagrad: Optimizer {
    public let parameters: [Parameter]
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: AdagradHyperparameters
    /// The learning rate before `lr_decay` is applied; schedules set it.
    public var learningRate: Float
    /// Steps taken so far (torch's `step`); the learning-rate decay uses it.
    public private(set) var stepCount = 0

    /// One sum of squared gradients per parameter (torch's `sum`) once the first step has run; empty before.
    private var sums: [Tensor] = []

    public init(parameters: [Parameter], hyperparameters: AdagradHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        self.parameters = parameters
        self.hyperparameters = hyperparameters
        self.learningRate = hyperparameters.lr
    }

    /// One Adagrad update of every parameter.
    ///
    /// Legend, per element: p parameter, g gradient, s sum of squared gradients; lr learning rate,
    /// η lr decay, λ weight decay, ε eps, t step count (1 on the first step).
    ///
    ///     g = g + λ·p                        weight decay as an L2 term
    ///     s = s + g²
    ///     p = p − lr/(1 + (t − 1)·η) · g / (√s + ε)
    public func step() {
        let hp = hyperparameters
        if sums.isEmpty {  // lazily created state, filled with initial_accumulator_value, once
            sums = parameters.map { Tensor(shape: $0.shape, repeating: hp.initialAccumulatorValue) }
        }
        stepCount += 1

        // The decayed learning rate in Double, as torch computes it with Python floats.
        let clr = Float(Double(learningRate) / (1 + Double(stepCount - 1) * Double(hp.lrDecay)))
        let lambda = hp.weightDecay, eps = hp.eps

        for index in parameters.indices {
            let parameter = parameters[index]
            let p = parameter.value.values
            let g = UnsafeBufferPointer(parameter.gradient.values)
            let s = sums[index].values
            precondition(g.count == p.count, "parameter \(index) (\(parameter.name)): gradient and value sizes differ")
            precondition(s.count == p.count, "parameter \(index) (\(parameter.name)) changed size since the first step")

            // √|s| rather than √s: s ≥ 0, so it is the same number, and the loop vectorizes (see Adam).
            for j in 0..<p.count {
                let gj = g[j] + lambda * p[j]
                s[j] += gj * gj
                p[j] -= clr * (gj / (abs(s[j]).squareRoot() + eps))
            }
        }
    }

    public func stateTensors() -> [String: Tensor] {
        guard stepCount > 0, !sums.isEmpty else { return [:] }
        var tensors: [String: Tensor] = ["step": Tensor(shape: [], values: [Float(stepCount)])]
        for (index, sum) in sums.enumerated() {
            tensors["\(index).sum"] = sum
        }
        return tensors
    }

    public func restoreState(from tensors: [String: Tensor]) throws(OptimizerError) {
        guard !tensors.isEmpty else {
            sums = []
            stepCount = 0
            return
        }
        var reader = StateReader(tensors)
        let count = try reader.stepCount("step")
        var restored: [Tensor] = []
        for (index, parameter) in parameters.enumerated() {
            restored.append(try reader.buffer("\(index).sum", like: parameter, index: index).clone())
        }
        try reader.checkNothingElse()
        sums = restored
        stepCount = count
    }
}
