import Tensors

/// The hyperparameters of `LBFGS`, with torch's names (in JSON) and defaults.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `LBFGS.init` validates too.
public struct LBFGSHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the step length tried first (after the very first iteration, whose step is
    /// `min(1, 1/‖g‖₁)·lr`); the line search starts from it.
    public var lr: Float = 1
    /// `max_iter`: iterations per `step(closure)`.
    public var maxIter = 20
    /// `max_eval`: closure calls per `step(closure)` (checked between iterations); nil means
    /// torch's default `max_iter · 5 / 4` (see `resolvedMaxEval`).
    public var maxEval: Int?
    /// `tolerance_grad`: a step stops once max |gᵢ| ≤ this (first-order optimality).
    public var toleranceGrad = 1e-7
    /// `tolerance_change`: a step stops once the loss or the parameters change by less than this.
    public var toleranceChange = 1e-9
    /// `history_size`: how many (s, y) pairs the inverse-Hessian approximation remembers.
    public var historySize = 100
    /// `line_search_fn`: nil (a fixed step of `lr`) or `"strong_wolfe"`.
    public var lineSearchFn: String?

    public static let lineSearchFunctions = ["strong_wolfe"]

    public init(
        lr: Float = 1, maxIter: Int = 20, maxEval: Int? = nil, toleranceGrad: Double = 1e-7,
        toleranceChange: Double = 1e-9, historySize: Int = 100, lineSearchFn: String? = nil
    ) {
        self.lr = lr
        self.maxIter = maxIter
        self.maxEval = maxEval
        self.toleranceGrad = toleranceGrad
        self.toleranceChange = toleranceChange
        self.historySize = historySize
        self.lineSearchFn = lineSearchFn
    }

    /// `max_eval`, or torch's default `max_iter · 5 / 4` when it is nil.
    public var resolvedMaxEval: Int { maxEval ?? maxIter * 5 / 4 }

    /// Every invalid hyperparameter, in field order (empty when valid). torch's checks (it has
    /// almost none), plus: lr > 0, counts ≥ 1, tolerances finite and ≥ 0, a known line search.
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            SecondOrderCheck.atLeast(maxIter, 1, "max_iter"),
            maxEval.flatMap { SecondOrderCheck.atLeast($0, 1, "max_eval") },
            SecondOrderCheck.nonNegative(toleranceGrad, "tolerance_grad"),
            SecondOrderCheck.nonNegative(toleranceChange, "tolerance_change"),
            SecondOrderCheck.atLeast(historySize, 1, "history_size"),
            SecondOrderCheck.oneOf(lineSearchFn, Self.lineSearchFunctions, "line_search_fn"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr
        case maxIter = "max_iter"
        case maxEval = "max_eval"
        case toleranceGrad = "tolerance_grad"
        case toleranceChange = "tolerance_change"
        case historySize = "history_size"
        case lineSearchFn = "line_search_fn"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LBFGSHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        maxIter = try container.decodeIfPresent(Int.self, forKey: .maxIter) ?? defaults.maxIter
        maxEval = try container.decodeIfPresent(Int.self, forKey: .maxEval)
        toleranceGrad = try container.decodeIfPresent(Double.self, forKey: .toleranceGrad) ?? defaults.toleranceGrad
        toleranceChange = try container.decodeIfPresent(Double.self, forKey: .toleranceChange) ?? defaults.toleranceChange
        historySize = try container.decodeIfPresent(Int.self, forKey: .historySize) ?? defaults.historySize
        lineSearchFn = try container.decodeIfPresent(String.self, forKey: .lineSearchFn)
    }

    /// Every key, `max_eval` and `line_search_fn` as null when unset (the spec with defaults filled in).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lr, forKey: .lr)
        try container.encode(maxIter, forKey: .maxIter)
        try container.encode(maxEval, forKey: .maxEval)
        try container.encode(toleranceGrad, forKey: .toleranceGrad)
        try container.encode(toleranceChange, forKey: .toleranceChange)
        try container.encode(historySize, forKey: .historySize)
        try container.encode(lineSearchFn, forKey: .lineSearchFn)
    }
}

/// Limited-memory BFGS: torch 2.x `torch.optim.LBFGS`, step for step, on the parameters as one
/// flat Float64 vector.
///
/// One `step(closure)` evaluates the closure at the current point, then runs up to `max_iter`
/// iterations (fewer once the gradient, the loss change or the step falls below the tolerances, or
/// `max_eval` closure calls are spent). Legend: x the flat parameters, g = ∇f(x), d the direction,
/// t the step length, (sᵢ, yᵢ) the remembered steps and gradient changes, ρᵢ = 1/(yᵢᵀsᵢ), γ the
/// initial inverse-Hessian scale (torch's `H_diag`).
///
///     first iteration ever:  d = −g,  t = min(1, 1/‖g‖₁)·lr
///     afterwards:            y = g − g_prev, s = t_prev·d_prev; if yᵀs > 1e-10 remember (s, y)
///                            (dropping the oldest beyond history_size) and set γ = yᵀs / yᵀy;
///                            d = −H·g by the two-loop recursion with H₀ = γ·I;  t = lr
///     stop if gᵀd > −tolerance_change
///     strong Wolfe (torch's _strong_wolfe) from t, or the fixed step t
///     x = x + t·d
///
/// Without a line search the loss and gradient are re-evaluated after every iteration but the last
/// (the next step evaluates there anyway), as torch does.
///
/// State (torch keeps the same in `state`), created on the first step: d, t, g_prev, the loss of
/// the previous iteration, γ, and up to `history_size` pairs (s, y), allocated as the history grows
/// and recycled once it is full. Memory: 2·history_size + 6 Float64 vectors of the parameter count,
/// 5 more with the line search, and the master copy of the parameters.
public final class LBFGS: SecondOrderOptimizer {
    /// L-BFGS is the second-order method meant for big models: its cost per iteration is linear in
    /// the parameter count. The limit keeps the history (16 bytes · history_size per parameter) sane.
    public static let parameterLimit: Int? = 10_000_000

    public let parameters: [Parameter]
    public let dimension: Int
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: LBFGSHyperparameters
    public var learningRate: Float

    /// Iterations over all steps so far (torch's `state["n_iter"]`).
    public private(set) var iterationCount = 0
    /// Closure calls over all steps so far (torch's `state["func_evals"]`).
    public private(set) var evaluationCount = 0
    /// How many (s, y) pairs the history holds.
    public var historyCount: Int { state?.rho.count ?? 0 }

    private let bridge: ParameterVector?

    /// Everything created on the first step.
    private final class State {
        /// g at the current point, then at each new point.
        let gradient: FlatBuffer
        /// g at the start of the latest iteration (torch's `prev_flat_grad`).
        let previousGradient: FlatBuffer
        /// The latest direction d.
        let direction: FlatBuffer
        /// The latest step length t (torch keeps it between steps: s = t·d on the next iteration).
        var stepLength = 0.0
        var previousLoss = 0.0
        /// γ, torch's `H_diag`.
        var hessianScale = 1.0
        /// The remembered pairs, oldest first (torch's `old_stps`, `old_dirs`, `ro`).
        var steps: [FlatBuffer] = []
        var gradientChanges: [FlatBuffer] = []
        var rho: [Double] = []
        /// The two-loop coefficients (torch's `al`).
        var alpha: [Double]
        /// Where the next pair is computed before it is known to be kept.
        var spareStep: FlatBuffer
        var spareGradientChange: FlatBuffer
        let lineSearch: StrongWolfeLineSearch?

        init(dimension: Int, historySize: Int, lineSearch: Bool) {
            gradient = FlatBuffer(count: dimension)
            previousGradient = FlatBuffer(count: dimension)
            direction = FlatBuffer(count: dimension)
            alpha = Array(repeating: 0, count: historySize)
            steps.reserveCapacity(historySize)
            gradientChanges.reserveCapacity(historySize)
            rho.reserveCapacity(historySize)
            spareStep = FlatBuffer(count: dimension)
            spareGradientChange = FlatBuffer(count: dimension)
            // torch calls _strong_wolfe with its defaults: c1 1e-4, c2 0.9, tolerance_change 1e-9 (not
            // the optimizer's), 25 evaluations.
            self.lineSearch = lineSearch ? StrongWolfeLineSearch(dimension: dimension) : nil
        }
    }
    private var state: State?

    /// An optimizer of `parameters` (Float32), through a Float64 master copy.
    public init(parameters: [Parameter], hyperparameters: LBFGSHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        let bridge = ParameterVector(parameters)
        if let error = Self.parameterLimitProblem(parameterCount: bridge.count, method: "lbfgs") {
            throw OptimizerError(field: "parameters", message: error.message)
        }
        self.parameters = parameters
        self.bridge = bridge
        dimension = bridge.count
        self.hyperparameters = hyperparameters
        learningRate = hyperparameters.lr
    }

    /// An optimizer of a flat Float64 vector of `dimension` elements, stepped by `step(_:evaluate:)`.
    public init(dimension: Int, hyperparameters: LBFGSHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        precondition(dimension >= 0)
        parameters = []
        bridge = nil
        self.dimension = dimension
        self.hyperparameters = hyperparameters
        learningRate = hyperparameters.lr
    }

    @discardableResult
    public func step(_ evaluate: LossAndGradient) -> Double {
        guard let bridge else {
            preconditionFailure("this LBFGS was made for a flat vector of \(dimension): call step(_:evaluate:)")
        }
        return bridge.run(evaluate) { x, objective in iterate(x, objective) }
    }

    @discardableResult
    public func step(_ x: inout [Double], evaluate: FlatLossAndGradient) -> Double {
        precondition(x.count == dimension, "x has \(x.count) elements, the optimizer \(dimension)")
        return x.withUnsafeMutableBufferPointer { iterate($0, evaluate) }
    }

    /// One torch `LBFGS.step(closure)` on x.
    private func iterate(_ x: UnsafeMutableBufferPointer<Double>, _ evaluate: FlatLossAndGradient) -> Double {
        let hp = hyperparameters
        let state = self.state ?? State(
            dimension: dimension, historySize: hp.historySize, lineSearch: hp.lineSearchFn == "strong_wolfe")
        self.state = state
        let lr = Double(learningRate)
        let maxEval = hp.resolvedMaxEval
        let g = state.gradient.values, d = state.direction.values

        // Evaluate f(x) and ∇f(x).
        let originalLoss = evaluate(UnsafeBufferPointer(x), g)
        var loss = originalLoss
        var currentEvaluations = 1
        evaluationCount += 1
        var isOptimal = Flat.maxAbs(state.gradient.readable) <= hp.toleranceGrad
        if isOptimal { return originalLoss }

        var localIterations = 0
        while localIterations < hp.maxIter {
            localIterations += 1
            iterationCount += 1

            // Direction.
            if iterationCount == 1 {
                Flat.scaled(-1, state.gradient.readable, into: d)
                state.steps.removeAll(keepingCapacity: true)
                state.gradientChanges.removeAll(keepingCapacity: true)
                state.rho.removeAll(keepingCapacity: true)
                state.hessianScale = 1
            } else {
                updateHistory(state)
                twoLoopRecursion(state)
            }
            Flat.copy(state.gradient.readable, to: state.previousGradient.values)
            let previousLoss = loss
            state.previousLoss = previousLoss

            // Step length: on the very first iteration scaled so that the first step is small.
            var t = iterationCount == 1 ? pythonMin(1, 1 / Flat.sumAbs(state.gradient.readable)) * lr : lr
            state.stepLength = t

            // Directional derivative; stop when d is no descent direction.
            let gtd = Flat.dot(state.gradient.readable, state.direction.readable)
            if gtd > -hp.toleranceChange { break }

            var lineSearchEvaluations = 0
            if let lineSearch = state.lineSearch {
                let result = lineSearch.search(
                    x: UnsafeBufferPointer(x), t: t, d: state.direction.readable, f: loss, g: state.gradient.readable,
                    gtd: gtd, evaluate: evaluate, gradientOut: g)
                loss = result.loss
                t = result.t
                state.stepLength = t
                lineSearchEvaluations = result.evaluations
                Flat.addScaled(t, state.direction.readable, to: x)
                isOptimal = Flat.maxAbs(state.gradient.readable) <= hp.toleranceGrad
            } else {
                Flat.addScaled(t, state.direction.readable, to: x)
                if localIterations != hp.maxIter {
                    // Re-evaluate except after the last iteration (the next step does it).
                    loss = evaluate(UnsafeBufferPointer(x), g)
                    isOptimal = Flat.maxAbs(state.gradient.readable) <= hp.toleranceGrad
                    lineSearchEvaluations = 1
                }
            }
            currentEvaluations += lineSearchEvaluations
            evaluationCount += lineSearchEvaluations

            // Stopping conditions.
            if localIterations == hp.maxIter { break }
            if currentEvaluations >= maxEval { break }
            if isOptimal { break }
            // Lack of progress: max |t·dᵢ| (= |t|·max |dᵢ|: rounding is monotonic).
            if abs(t) * Flat.maxAbs(state.direction.readable) <= hp.toleranceChange { break }
            if abs(loss - previousLoss) < hp.toleranceChange { break }
        }
        return originalLoss
    }

    /// y = g − g_prev, s = t·d; kept (dropping the oldest beyond history_size) when yᵀs > 1e-10,
    /// which also sets γ = yᵀs / yᵀy.
    private func updateHistory(_ state: State) {
        let y = state.spareGradientChange.values, s = state.spareStep.values
        let g = state.gradient.values, gPrevious = state.previousGradient.values, d = state.direction.values
        let t = state.stepLength
        for j in 0..<y.count {
            y[j] = g[j] - gPrevious[j]
            s[j] = d[j] * t
        }
        let ys = Flat.dot(state.spareGradientChange, state.spareStep)
        guard ys > 1e-10 else { return }

        let kept = (step: state.spareStep, change: state.spareGradientChange)
        if state.rho.count == hyperparameters.historySize {
            // Recycle the oldest pair's buffers as the next spares: no allocation once the history is full.
            state.spareStep = state.steps.removeFirst()
            state.spareGradientChange = state.gradientChanges.removeFirst()
            state.rho.removeFirst()
        } else {
            state.spareStep = FlatBuffer(count: dimension)
            state.spareGradientChange = FlatBuffer(count: dimension)
        }
        state.steps.append(kept.step)
        state.gradientChanges.append(kept.change)
        state.rho.append(1 / ys)
        state.hessianScale = ys / Flat.dot(kept.change, kept.change)
    }

    /// d = −H·g by the two-loop recursion over the history, H₀ = γ·I (torch's collapsed single buffer).
    private func twoLoopRecursion(_ state: State) {
        let d = state.direction.values
        Flat.scaled(-1, state.gradient.readable, into: d)  // q = −g
        let count = state.rho.count
        for i in stride(from: count - 1, through: 0, by: -1) {
            let alpha = Flat.dot(state.steps[i].readable, UnsafeBufferPointer(d)) * state.rho[i]
            state.alpha[i] = alpha
            Flat.addScaled(-alpha, state.gradientChanges[i].readable, to: d)
        }
        let gamma = state.hessianScale
        for j in 0..<d.count { d[j] *= gamma }  // r = γ·q
        for i in 0..<count {
            let beta = Flat.dot(state.gradientChanges[i].readable, UnsafeBufferPointer(d)) * state.rho[i]
            Flat.addScaled(state.alpha[i] - beta, state.steps[i].readable, to: d)
        }
    }
}
