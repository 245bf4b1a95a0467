import Foundation
import Tensors

/// The hyperparameters of `Newton`: `lr`, `damping` (the spec's), and the iteration and tolerance
/// names of torch's L-BFGS.
///
/// Decoding fills missing keys with the defaults and does not validate: call `problems` (every
/// problem, for a 422) or `validate()` (the first one); `Newton.init` validates too.
public struct NewtonHyperparameters: Sendable, Equatable, Codable {
    /// `lr`: the step length tried first along the Newton direction (1 is the full Newton step).
    public var lr: Float = 1
    /// `damping`: the initial Levenberg–Marquardt λ in (H + λ·I)·d = −g; 0 starts as pure Newton.
    public var damping = 1e-3
    /// `max_iter`: Newton iterations per `step(closure)` (each costs 2·n gradient evaluations).
    public var maxIter = 1
    /// `tolerance_grad`: no iteration once max |gᵢ| ≤ this.
    public var toleranceGrad = 1e-7
    /// `tolerance_change`: the step ends once an iteration changes the loss by less than this.
    public var toleranceChange = 1e-9

    public init(lr: Float = 1, damping: Double = 1e-3, maxIter: Int = 1, toleranceGrad: Double = 1e-7, toleranceChange: Double = 1e-9) {
        self.lr = lr
        self.damping = damping
        self.maxIter = maxIter
        self.toleranceGrad = toleranceGrad
        self.toleranceChange = toleranceChange
    }

    /// Every invalid hyperparameter, in field order (empty when valid).
    public var problems: [OptimizerError] {
        [
            Check.positive(lr, "lr"),
            SecondOrderCheck.nonNegative(damping, "damping"),
            SecondOrderCheck.atLeast(maxIter, 1, "max_iter"),
            SecondOrderCheck.nonNegative(toleranceGrad, "tolerance_grad"),
            SecondOrderCheck.nonNegative(toleranceChange, "tolerance_change"),
        ].compactMap { $0 }
    }

    /// Throws the first of `problems`.
    public func validate() throws(OptimizerError) {
        if let first = problems.first { throw first }
    }

    enum CodingKeys: String, CodingKey {
        case lr, damping
        case maxIter = "max_iter"
        case toleranceGrad = "tolerance_grad"
        case toleranceChange = "tolerance_change"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = NewtonHyperparameters()
        lr = try container.decodeIfPresent(Float.self, forKey: .lr) ?? defaults.lr
        damping = try container.decodeIfPresent(Double.self, forKey: .damping) ?? defaults.damping
        maxIter = try container.decodeIfPresent(Int.self, forKey: .maxIter) ?? defaults.maxIter
        toleranceGrad = try container.decodeIfPresent(Double.self, forKey: .toleranceGrad) ?? defaults.toleranceGrad
        toleranceChange = try container.decodeIfPresent(Double.self, forKey: .toleranceChange) ?? defaults.toleranceChange
    }
}

/// Damped Newton (Levenberg–Marquardt on the Hessian) with a backtracking line search.
///
/// Legend: x the flat parameters, g = ∇f(x), H ≈ ∇²f(x), λ the damping, d the direction, t the step.
///
///     H[i][j] = (g_j(x + hᵢ·eᵢ) − g_j(x − hᵢ·eᵢ)) / (2hᵢ),  H = (H + Hᵀ)/2
///                hᵢ = ε^(1/3)·max(1, |xᵢ|), ε the unit roundoff of the evaluation (Float32 through
///                the parameters, Float64 through a flat objective); 2hᵢ is the difference of the
///                two points as the evaluation sees them
///     (H + λ·I)·d = −g    by Cholesky (LAPACK dposv); while H + λ·I is not positive definite,
///                         λ = max(10·λ, 1e-6·s), s = max(1, max |H_ii|)
///     t = lr, lr/2, lr/4 … until f(x + t·d) ≤ f + 1e-4·t·gᵀd           (at most 30 tries; or, within
///                         the loss's rounding 4ε·|f|, until max |g| shrinks — see BacktrackingLineSearch)
///     ρ = (f(x) − f(x + t·d)) / −(t·gᵀd + ½t²·dᵀHd)       actual over predicted decrease
///     λ = λ/3 if ρ > 3/4;  λ = max(2·λ, 1e-6·s) if ρ < 1/4   (below 1e-15·s it becomes 0)
///     x = x + t·d
///
/// When no t gives a decrease, x stays, λ grows tenfold and the step ends. On a quadratic with
/// `damping` 0, one iteration lands on the minimizer (central differences are exact for a linear
/// gradient, up to rounding); with damping λ the first iteration leaves a fraction ≈ λ/(λ + μ) of
/// the error along each eigenvector of eigenvalue μ, and λ shrinks threefold per good iteration.
///
/// One `step(closure)` evaluates the closure at the current point, then runs up to `max_iter`
/// iterations. State: λ (`damping`) and the buffers, created on the first step. Memory: 2·n² + 9·n
/// Float64 values with the master copy (400 MB at the limit of 5 000 parameters); cost per iteration: 2·n + (line search)
/// closure calls and one n³/3 Cholesky factorization per damping tried.
public final class Newton: SecondOrderOptimizer {
    /// The dense Hessian (2·n² Float64 with its factorization) and the 2·n closure calls per iteration bound the size.
    public static let parameterLimit: Int? = 5_000

    public let parameters: [Parameter]
    public let dimension: Int
    /// The validated hyperparameters it was created with; `lr` there is the initial learning rate.
    public let hyperparameters: NewtonHyperparameters
    public var learningRate: Float
    /// The current λ; starts at `hyperparameters.damping` and adapts.
    public private(set) var damping: Double

    /// Iterations over all steps so far.
    public private(set) var iterationCount = 0
    /// Closure calls over all steps so far (Hessian columns included).
    public private(set) var evaluationCount = 0

    private let bridge: ParameterVector?

    private final class State {
        /// H, row-major n × n, symmetrized.
        let hessian: FlatBuffer
        /// H + λ·I, overwritten by its Cholesky factor.
        let system: FlatBuffer
        let gradient: FlatBuffer
        let newGradient: FlatBuffer
        let direction: FlatBuffer
        /// H·d, then scratch for the finite differences.
        let scratch: FlatBuffer
        let gradientPlus: FlatBuffer
        let gradientMinus: FlatBuffer
        let point: FlatBuffer
        let lineSearch: BacktrackingLineSearch

        init(dimension n: Int) {
            hessian = FlatBuffer(count: n * n)
            system = FlatBuffer(count: n * n)
            gradient = FlatBuffer(count: n)
            newGradient = FlatBuffer(count: n)
            direction = FlatBuffer(count: n)
            scratch = FlatBuffer(count: n)
            gradientPlus = FlatBuffer(count: n)
            gradientMinus = FlatBuffer(count: n)
            point = FlatBuffer(count: n)
            lineSearch = BacktrackingLineSearch(dimension: n)
        }
    }
    private var state: State?

    /// An optimizer of `parameters` (Float32), through a Float64 master copy. Refuses more than
    /// `parameterLimit` parameters.
    public init(parameters: [Parameter], hyperparameters: NewtonHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Check.distinct(parameters) { throw error }
        let bridge = ParameterVector(parameters)
        if let error = Self.parameterLimitProblem(parameterCount: bridge.count, method: "newton") {
            throw OptimizerError(field: "parameters", message: error.message)
        }
        self.parameters = parameters
        self.bridge = bridge
        dimension = bridge.count
        self.hyperparameters = hyperparameters
        learningRate = hyperparameters.lr
        damping = hyperparameters.damping
    }

    /// An optimizer of a flat Float64 vector of `dimension` elements, stepped by `step(_:evaluate:)`.
    public init(dimension: Int, hyperparameters: NewtonHyperparameters) throws(OptimizerError) {
        try hyperparameters.validate()
        if let error = Self.parameterLimitProblem(parameterCount: dimension, method: "newton") {
            throw OptimizerError(field: "parameters", message: error.message)
        }
        precondition(dimension >= 0)
        parameters = []
        bridge = nil
        self.dimension = dimension
        self.hyperparameters = hyperparameters
        learningRate = hyperparameters.lr
        damping = hyperparameters.damping
    }

    @discardableResult
    public func step(_ evaluate: LossAndGradient) -> Double {
        guard let bridge else {
            preconditionFailure("this Newton was made for a flat vector of \(dimension): call step(_:evaluate:)")
        }
        return bridge.run(evaluate) { x, objective in iterate(x, objective, precision: .float32) }
    }

    @discardableResult
    public func step(_ x: inout [Double], evaluate: FlatLossAndGradient) -> Double {
        precondition(x.count == dimension, "x has \(x.count) elements, the optimizer \(dimension)")
        return x.withUnsafeMutableBufferPointer { iterate($0, evaluate, precision: .float64) }
    }

    private func iterate(
        _ x: UnsafeMutableBufferPointer<Double>, _ evaluate: FlatLossAndGradient, precision: EvaluationPrecision
    ) -> Double {
        let hp = hyperparameters
        let state = self.state ?? State(dimension: dimension)
        self.state = state
        let n = dimension
        let g = state.gradient.values, d = state.direction.values

        var loss = evaluate(UnsafeBufferPointer(x), g)
        let originalLoss = loss
        evaluationCount += 1

        var iterations = 0
        while iterations < hp.maxIter {
            if !(Flat.maxAbs(state.gradient.readable) > hp.toleranceGrad) { break }  // optimal (or NaN)
            iterations += 1
            iterationCount += 1

            computeHessian(at: UnsafeBufferPointer(x), evaluate, precision: precision, state: state)
            let h = state.hessian.values
            var diagonalScale = 0.0
            for i in 0..<n { diagonalScale = max(diagonalScale, abs(h[i * n + i])) }
            let scale = diagonalScale.isFinite ? max(1, diagonalScale) : 1
            let dampingFloor = 1e-6 * scale

            // (H + λ·I)·d = −g, growing λ until H + λ·I is positive definite.
            var isSolved = false
            for _ in 0..<64 {
                let a = state.system.values
                a.baseAddress!.update(from: h.baseAddress!, count: n * n)
                for i in 0..<n { a[i * n + i] += damping }
                Flat.scaled(-1, state.gradient.readable, into: d)
                if LAPACK.solvePositiveDefinite(n: n, a: a.baseAddress!, b: d.baseAddress!),
                   Flat.isFinite(state.direction.readable) {
                    isSolved = true
                    break
                }
                damping = max(damping * 10, dampingFloor)
            }
            var gtd = Flat.dot(state.gradient.readable, state.direction.readable)
            if !isSolved || !(gtd < 0) {
                Flat.scaled(-1, state.gradient.readable, into: d)  // steepest descent
                gtd = Flat.dot(state.gradient.readable, state.direction.readable)
                if !(gtd < 0) { break }
            }
            Flat.multiply(state.hessian.readable, state.direction.readable, into: state.scratch.values)
            let dHd = Flat.dot(state.direction.readable, state.scratch.readable)

            // The loss's own rounding: a few units in the last place of the evaluation's precision.
            let lossNoise = 4 * precision.epsilon * abs(loss)
            let (found, evaluations) = state.lineSearch.search(
                x: UnsafeBufferPointer(x), t: Double(learningRate), d: state.direction.readable, f: loss,
                g: state.gradient.readable, gtd: gtd, lossNoise: lossNoise,
                evaluate: evaluate, gradientOut: state.newGradient.values)
            evaluationCount += evaluations
            guard let result = found else {
                damping = max(damping * 10, dampingFloor)
                break
            }

            // Adapt λ from how well the quadratic model predicted the decrease.
            let t = result.t
            let predicted = -(t * gtd + 0.5 * t * t * dHd)
            let ratio = (loss - result.loss) / predicted
            if predicted > 0, ratio > 0.75 {
                damping /= 3
                if damping < 1e-15 * scale { damping = 0 }
            } else if !(predicted > 0) || ratio < 0.25 {
                damping = max(damping * 2, dampingFloor)
            }

            Flat.addScaled(t, state.direction.readable, to: x)
            Flat.copy(state.newGradient.readable, to: g)
            let previousLoss = loss
            loss = result.loss
            if abs(previousLoss - loss) < hp.toleranceChange { break }
        }
        return originalLoss
    }

    /// H by central differences of the gradient, one coordinate at a time (row i from the
    /// perturbation of xᵢ: ∂g_j/∂xᵢ), then symmetrized.
    private func computeHessian(
        at x: UnsafeBufferPointer<Double>, _ evaluate: FlatLossAndGradient, precision: EvaluationPrecision, state: State
    ) {
        let n = dimension
        let h = state.hessian.values
        let point = state.point.values
        Flat.copy(x, to: point)
        let relativeStep = cbrt(precision.epsilon)
        for i in 0..<n {
            let xi = x[i]
            let step = relativeStep * max(1, abs(xi))
            let plus = precision.representable(xi + step)
            let minus = precision.representable(xi - step)
            point[i] = plus
            _ = evaluate(state.point.readable, state.gradientPlus.values)
            point[i] = minus
            _ = evaluate(state.point.readable, state.gradientMinus.values)
            point[i] = xi
            let inverseWidth = 1 / (plus - minus)
            let row = h.baseAddress! + i * n
            for j in 0..<n {
                row[j] = (state.gradientPlus.values[j] - state.gradientMinus.values[j]) * inverseWidth
            }
        }
        evaluationCount += 2 * n
        for i in 0..<n {
            for j in (i + 1)..<n {
                let mean = 0.5 * (h[i * n + j] + h[j * n + i])
                h[i * n + j] = mean
                h[j * n + i] = mean
            }
        }
    }
}
