import Tensors

/// The hyperparameters of `BFGS`. Names follow scipy's `minimize(method="BFGS")` where torch has
/// no BFGS (`gtol`, `c1`, `c2`), and torch's L-BFGS elsewhere (`lr`, `max_iter`, `tolerance_change`).
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `BFGS.init` validates too.
public struct BFGSHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: scales the line search's first trial step (scipy's `min(1, 1.01·2·(f − f_prev)/gᵀp)`).
    public var lr: Float = 1
    /// `max_iter`: BFGS iterations per `step(closure)`.
    public var maxIter = 20
    /// `gtol`: an iteration stops the step once max |gᵢ| ≤ this (scipy's default, ∞-norm).
    public var gtol = 1e-5
    /// `c1`: the line search's sufficient-decrease constant.
    public var c1 = 1e-4
    /// `c2`: the line search's curvature constant, c1 < c2 < 1.
    public var c2 = 0.9
    /// `tolerance_change`: the line search stops when its bracket is shorter than this (in x).
    public var toleranceChange = 1e-9

    public init(lr: Float = 1, maxIter: Int = 20, gtol: Double = 1e-5, c1: Double = 1e-4, c2: Double = 0.9, toleranceChange: Double = 1e-9) {
        self.lr = lr
        self.maxIter = maxIter
        self.gtol = gtol
        self.c1 = c1
        self.c2 = c2
        self.toleranceChange = toleranceChange
    }

    /// Every invalid hyperparameter, in field order (empty when valid).
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            SecondOrderCheck.atLeast(maxIter, 1, "max_iter"),
            SecondOrderCheck.nonNegative(gtol, "gtol"),
            SecondOrderCheck.between(c1, 0, 1, "c1"),
            // c2 is checked against c1 only when c1 itself is valid.
            SecondOrderCheck.between(c2, c1 > 0 && c1 < 1 ? c1 : 0, 1, "c2", lowerName: c1 > 0 && c1 < 1 ? "c1 = \(c1)" : nil),
            SecondOrderCheck.nonNegative(toleranceChange, "tolerance_change"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, gtol, c1, c2
        case maxIter = "max_iter"
        case toleranceChange = "tolerance_change"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = BFGSHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        maxIter = try container.decodeIfPresent(Int.self, forKey: .maxIter) ?? defaults.maxIter
        gtol = try container.decodeIfPresent(Double.self, forKey: .gtol) ?? defaults.gtol
        c1 = try container.decodeIfPresent(Double.self, forKey: .c1) ?? defaults.c1
        c2 = try container.decodeIfPresent(Double.self, forKey: .c2) ?? defaults.c2
        toleranceChange = try container.decodeIfPresent(Double.self, forKey: .toleranceChange) ?? defaults.toleranceChange
    }
}

/// BFGS with a dense inverse-Hessian approximation H, after scipy's `_minimize_bfgs`, with
/// torch's strong-Wolfe line search (the one `LBFGS` uses) in place of MINPACK's.
///
/// Legend: x the flat parameters, g = ∇f(x), p the direction, t the step length, s = t·p,
/// y = g_new − g, ρ = 1/(yᵀs), H ≈ (∇²f)⁻¹ (n × n, symmetric).
///
///     p = −H·g                                    (−g if that is no descent direction: H restarts as I)
///     t₀ = lr · min(1, 1.01·2·(f − f_prev)/gᵀp)   scipy's first trial, "dx ≈ 1" on the first iteration
///     t: strong Wolfe from t₀ (c1, c2)
///     x = x + s
///     stop the step if max |g_new| ≤ gtol
///     before the first update only: H = (yᵀs / yᵀy)·I       (Nocedal & Wright, eq. 6.20; scipy keeps I)
///     H = (I − ρ·s·yᵀ)·H·(I − ρ·y·sᵀ) + ρ·s·sᵀ      (skipped if yᵀs ≤ 0, which scipy does not check)
///
/// computed as H − ρ·(s·(Hy)ᵀ + (Hy)·sᵀ) + (ρ²·yᵀHy + ρ)·s·sᵀ, O(n²). A line search that ends above
/// the current loss restarts H as I; if that happens with H = I already, the step ends there.
///
/// One `step(closure)` evaluates the closure at the current point (the data may change between
/// steps), then runs up to `max_iter` iterations. State, created on the first step: H, the loss
/// before the latest iteration (for t₀), whether H has been scaled. Memory: n² + 11·n Float64 values
/// with the line search and the master copy (200 MB at the limit of 5 000 parameters).
public final class BFGS: SecondOrderOptimizer {
    /// The dense n × n inverse Hessian bounds the size: 5 000 parameters → 200 MB, 25 M multiply-adds per update.
    public static let parameterLimit: Int? = 5_000

    public let parameters: [Parameter]
    public let dimension: Int
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: BFGSHyperparameters
    public var learningRate: Float

    /// Iterations over all steps so far.
    public private(set) var iterationCount = 0
    /// Closure calls over all steps so far.
    public private(set) var evaluationCount = 0
    /// Times H was reset to the identity after a failed line search or a non-descent direction.
    public private(set) var restartCount = 0

    private let bridge: ParameterVector?

    private final class State {
        /// H, row-major n × n.
        let inverseHessian: FlatBuffer
        let gradient: FlatBuffer
        let newGradient: FlatBuffer
        let direction: FlatBuffer
        /// y, then H·y.
        let gradientChange: FlatBuffer
        let hessianTimesChange: FlatBuffer
        let lineSearch: StrongWolfeLineSearch
        /// The loss before the latest iteration (scipy's `old_old_fval`), for the first trial step.
        var previousLoss: Double?
        /// H is still the unscaled identity: the next update scales it first.
        var isIdentity = true

        init(dimension n: Int, hyperparameters: BFGSHyperparameters) {
            inverseHessian = FlatBuffer(count: n * n)
            gradient = FlatBuffer(count: n)
            newGradient = FlatBuffer(count: n)
            direction = FlatBuffer(count: n)
            gradientChange = FlatBuffer(count: n)
            hessianTimesChange = FlatBuffer(count: n)
            lineSearch = StrongWolfeLineSearch(
                dimension: n, c1: hyperparameters.c1, c2: hyperparameters.c2,
                toleranceChange: hyperparameters.toleranceChange)
        }

        func resetToIdentity() {
            let n = gradient.count
            let h = inverseHessian.values
            h.update(repeating: 0)
            for i in 0..<n { h[i * n + i] = 1 }
            isIdentity = true
        }
    }
    private var state: State?

    /// An optimizer of `parameters` (Float32), through a Float64 master copy. Refuses more than
    /// `parameterLimit` parameters.
    public init(parameters: [Parameter], hyperparameters: BFGSHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        let bridge = ParameterVector(parameters)
        if let error = Self.parameterLimitProblem(parameterCount: bridge.count, method: "bfgs") {
            throw OptimizerError(field: "parameters", message: error.message)
        }
        self.parameters = parameters
        self.bridge = bridge
        dimension = bridge.count
        self.hyperparameters = hyperparameters
        learningRate = hyperparameters.lr
    }

    /// An optimizer of a flat Float64 vector of `dimension` elements, stepped by `step(_:evaluate:)`.
    public init(dimension: Int, hyperparameters: BFGSHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Self.parameterLimitProblem(parameterCount: dimension, method: "bfgs") {
            throw OptimizerError(field: "parameters", message: error.message)
        }
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
            preconditionFailure("this BFGS was made for a flat vector of \(dimension): call step(_:evaluate:)")
        }
        return bridge.run(evaluate) { x, objective in iterate(x, objective) }
    }

    @discardableResult
    public func step(_ x: inout [Double], evaluate: FlatLossAndGradient) -> Double {
        precondition(x.count == dimension, "x has \(x.count) elements, the optimizer \(dimension)")
        return x.withUnsafeMutableBufferPointer { iterate($0, evaluate) }
    }

    private func iterate(_ x: UnsafeMutableBufferPointer<Double>, _ evaluate: FlatLossAndGradient) -> Double {
        let hp = hyperparameters
        let state: State
        if let existing = self.state {
            state = existing
        } else {
            state = State(dimension: dimension, hyperparameters: hp)
            state.resetToIdentity()
            self.state = state
        }
        let n = dimension
        let h = state.inverseHessian.values
        let p = state.direction.values

        var loss = evaluate(UnsafeBufferPointer(x), state.gradient.values)
        let originalLoss = loss
        evaluationCount += 1
        if Flat.maxAbs(state.gradient.readable) <= hp.gtol { return originalLoss }
        // scipy: "sets the initial step guess to dx ≈ 1".
        var previousLoss = state.previousLoss ?? loss + Self.norm(state.gradient.readable) / 2

        var iterations = 0
        while iterations < hp.maxIter {
            iterations += 1
            iterationCount += 1

            // p = −H·g; steepest descent (and H = I) when rounding made it no descent direction.
            Flat.multiply(state.inverseHessian.readable, state.gradient.readable, into: p)
            for j in 0..<n { p[j] = -p[j] }
            var gtp = Flat.dot(state.gradient.readable, state.direction.readable)
            if !(gtp < 0) {
                state.resetToIdentity()
                restartCount += 1
                Flat.scaled(-1, state.gradient.readable, into: p)
                gtp = Flat.dot(state.gradient.readable, state.direction.readable)
                if !(gtp < 0) { break }  // g = 0 or not finite
            }

            // First trial step: scipy's line_search_wolfe1 guess, scaled by lr.
            var alpha = pythonMin(1, 1.01 * 2 * (loss - previousLoss) / gtp)
            if !(alpha > 0) { alpha = 1 }
            let result = state.lineSearch.search(
                x: UnsafeBufferPointer(x), t: Double(learningRate) * alpha, d: state.direction.readable,
                f: loss, g: state.gradient.readable, gtd: gtp, evaluate: evaluate,
                gradientOut: state.newGradient.values)
            evaluationCount += result.evaluations

            guard result.loss <= loss, result.t != 0 else {
                // The line search found no point as low: restart from steepest descent, or give up if
                // that was steepest descent already. (An equal loss is accepted: near the minimum the
                // loss stops resolving progress that the gradient still shows.)
                if state.isIdentity { break }
                state.resetToIdentity()
                restartCount += 1
                continue
            }

            // s = t·p (kept in p), y = g_new − g.
            let t = result.t
            let s = p, y = state.gradientChange.values
            for j in 0..<n {
                s[j] *= t
                x[j] += s[j]
                y[j] = state.newGradient.values[j] - state.gradient.values[j]
            }
            Flat.copy(state.newGradient.readable, to: state.gradient.values)
            previousLoss = loss
            loss = result.loss

            if Flat.maxAbs(state.gradient.readable) <= hp.gtol || !loss.isFinite { break }

            let ys = Flat.dot(state.gradientChange.readable, state.direction.readable)
            guard ys > 0 else { continue }
            if state.isIdentity {
                // H₀ = (yᵀs / yᵀy)·I before the first update.
                let scale = ys / Flat.dot(state.gradientChange, state.gradientChange)
                for i in 0..<n { h[i * n + i] = scale }
                state.isIdentity = false
            }
            updateInverseHessian(h, s: UnsafeBufferPointer(s), y: state.gradientChange.readable, ys: ys, state: state)
        }
        state.previousLoss = previousLoss
        return originalLoss
    }

    /// H = H − ρ·(s·(Hy)ᵀ + (Hy)·sᵀ) + (ρ²·yᵀHy + ρ)·s·sᵀ: the BFGS update of the inverse. Each
    /// entry's expression is symmetric in i and j, rounding included, so H stays exactly symmetric.
    private func updateInverseHessian(
        _ h: UnsafeMutableBufferPointer<Double>, s: UnsafeBufferPointer<Double>, y: UnsafeBufferPointer<Double>,
        ys: Double, state: State
    ) {
        let n = dimension
        let hy = state.hessianTimesChange.values
        Flat.multiply(UnsafeBufferPointer(h), y, into: hy)
        let rho = 1 / ys
        let yhy = Flat.dot(y, UnsafeBufferPointer(hy))
        let ss = rho * rho * yhy + rho
        for i in 0..<n {
            let si = s[i], hyi = hy[i]
            let row = h.baseAddress! + i * n
            for j in 0..<n {
                row[j] += ss * (si * s[j]) - rho * (si * hy[j] + hyi * s[j])
            }
        }
    }

    /// ‖v‖₂
    private static func norm(_ v: UnsafeBufferPointer<Double>) -> Double { Flat.dot(v, v).squareRoot() }
}
