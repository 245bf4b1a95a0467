import Tensors

// The second-order optimizers (L-BFGS, BFGS, Newton) and what they share: the closure they call,
// the flat Float64 vector they work on, and the bridge between that vector and Float32 parameters.

/// Evaluates the loss at the parameters' current values and writes the full gradient into their
/// `gradient` tensors (zeroing first). Returns the loss.
///
/// The training loop builds it over the full training set (or a large batch): forward, loss,
/// backward, with regularization terms included, exactly as torch's `closure` for `LBFGS.step`.
public typealias LossAndGradient = () -> Double

/// An objective on a flat Float64 vector: returns f(x) and writes ∇f(x) into `gradient`
/// (as long as `x`). The second-order optimizers run on this form internally.
public typealias FlatLossAndGradient = (
    _ x: UnsafeBufferPointer<Double>, _ gradient: UnsafeMutableBufferPointer<Double>
) -> Double

/// An optimizer that needs the loss and gradient at points of its choosing: it calls a closure,
/// possibly several times per step (line searches, finite differences), instead of reading one
/// mini-batch gradient.
///
/// Internally each one works on the parameters as one flat Float64 vector `x` (parameters in order,
/// each row-major, like torch's `_gather_flat_grad`): it keeps a Float64 master copy of the
/// parameter values, writes `Float(x)` into the parameters before each call of the closure and
/// reads their Float32 gradients back as Float64. If something else changes the parameters between
/// steps (a checkpoint restore, a max-norm constraint), the next step notices and starts from the
/// parameters' values. The same methods run on a caller's `[Double]` with a Float64 objective through
/// `step(_:evaluate:)`, with no Float32 rounding anywhere.
public protocol SecondOrderOptimizer: AnyObject {
    /// The parameters it updates, in the model's order (empty for an optimizer made for a flat vector).
    var parameters: [Parameter] { get }
    /// The length of the flat vector: the parameters' total element count.
    var dimension: Int { get }
    /// The learning rate of the next step (the step length tried first, or the fixed step without a
    /// line search); schedules set it. Starts at the hyperparameters' `lr`.
    var learningRate: Float { get set }
    /// One torch-style `step(closure)`: may call `evaluate` several times; returns the loss before the step.
    /// The parameters hold the new values afterwards; their gradients hold whatever the last call left.
    @discardableResult func step(_ evaluate: LossAndGradient) -> Double
    /// The same step on a flat Float64 vector `x` of `dimension` elements, updated in place, with a
    /// Float64 objective. Returns the loss before the step. `evaluate` must read the point from its
    /// argument (often a trial point, not `x`), never from the caller's array, which is being mutated.
    @discardableResult func step(_ x: inout [Double], evaluate: FlatLossAndGradient) -> Double
    /// Most parameters this method accepts (nil: no limit), for the spec validator's 422.
    static var parameterLimit: Int? { get }
}

extension SecondOrderOptimizer {
    /// The problem to report (as a 422 naming the limit) when a model with `parameterCount`
    /// parameters is too big for this method; nil when it fits.
    public static func parameterLimitProblem(parameterCount: Int, method: String) -> OptimizerError? {
        guard let limit = parameterLimit, parameterCount > limit else { return nil }
        return OptimizerError(
            field: "type",
            message: "\(method) accepts models of at most \(limit) parameters, this one has \(parameterCount)")
    }
}

// MARK: - Hyperparameter checks of the second-order optimizers

/// Checks for Int and Float64 hyperparameters (the first-order ones are Float32, see `Check`).
enum SecondOrderCheck {
    /// A whole number ≥ `minimum`.
    static func atLeast(_ value: Int, _ minimum: Int, _ field: String) -> OptimizerError? {
        value >= minimum ? nil : OptimizerError(field: field, message: "must be ≥ \(minimum), got \(value)")
    }

    /// A finite value ≥ 0 (tolerances, damping).
    static func nonNegative(_ value: Double, _ field: String) -> OptimizerError? {
        guard value.isFinite else { return OptimizerError(field: field, message: "must be a finite number, got \(value)") }
        guard value >= 0 else { return OptimizerError(field: field, message: "must be ≥ 0, got \(value)") }
        return nil
    }

    /// A value strictly between `lower` and `upper` (the Wolfe constants).
    static func between(_ value: Double, _ lower: Double, _ upper: Double, _ field: String, lowerName: String? = nil)
        -> OptimizerError?
    {
        guard value > lower, value < upper else {
            return OptimizerError(field: field, message: "must be in (\(lowerName ?? "\(lower)"), \(upper)), got \(value)")
        }
        return nil
    }

    /// One of `allowed`, or nil.
    static func oneOf(_ value: String?, _ allowed: [String], _ field: String) -> OptimizerError? {
        guard let value, !allowed.contains(value) else { return nil }
        let list = allowed.map { "\"\($0)\"" }.joined(separator: ", ")
        return OptimizerError(field: field, message: "must be \(list) or null, got \"\(value)\"")
    }
}

// MARK: - Flat Float64 vectors

/// A Float64 buffer allocated once and owned by an optimizer (zero-filled).
final class FlatBuffer {
    let values: UnsafeMutableBufferPointer<Double>

    init(count: Int) {
        values = .allocate(capacity: max(count, 1))
        values.initialize(repeating: 0)
    }

    deinit { values.deallocate() }

    var count: Int { values.count }
    var readable: UnsafeBufferPointer<Double> { UnsafeBufferPointer(values) }
}

/// The vector kernels of the second-order optimizers, on Float64 buffers of equal length.
/// Plain loops: they vectorize, and their sizes (≤ the parameter count) do not need BLAS threads.
enum Flat {
    static func dot(_ a: UnsafeBufferPointer<Double>, _ b: UnsafeBufferPointer<Double>) -> Double {
        precondition(a.count == b.count)
        var sum = 0.0
        for j in 0..<a.count { sum += a[j] * b[j] }
        return sum
    }

    static func dot(_ a: FlatBuffer, _ b: FlatBuffer) -> Double { dot(a.readable, b.readable) }

    /// max |aⱼ| (0 for an empty vector; NaN if any element is NaN).
    static func maxAbs(_ a: UnsafeBufferPointer<Double>) -> Double {
        var result = 0.0
        for value in a {
            if value.isNaN { return .nan }
            result = max(result, abs(value))
        }
        return result
    }

    /// Σ |aⱼ|
    static func sumAbs(_ a: UnsafeBufferPointer<Double>) -> Double {
        var sum = 0.0
        for value in a { sum += abs(value) }
        return sum
    }

    /// y = y + α·x
    static func addScaled(_ alpha: Double, _ x: UnsafeBufferPointer<Double>, to y: UnsafeMutableBufferPointer<Double>) {
        precondition(x.count == y.count)
        for j in 0..<y.count { y[j] += alpha * x[j] }
    }

    /// out = x + α·d
    static func step(
        from x: UnsafeBufferPointer<Double>, _ alpha: Double, _ d: UnsafeBufferPointer<Double>,
        into out: UnsafeMutableBufferPointer<Double>
    ) {
        precondition(x.count == out.count && d.count == out.count)
        for j in 0..<out.count { out[j] = x[j] + alpha * d[j] }
    }

    static func copy(_ source: UnsafeBufferPointer<Double>, to destination: UnsafeMutableBufferPointer<Double>) {
        precondition(source.count == destination.count)
        guard source.baseAddress != UnsafePointer(destination.baseAddress), !source.isEmpty else { return }
        destination.baseAddress!.update(from: source.baseAddress!, count: source.count)
    }

    /// y = α·x
    static func scaled(_ alpha: Double, _ x: UnsafeBufferPointer<Double>, into y: UnsafeMutableBufferPointer<Double>) {
        precondition(x.count == y.count)
        for j in 0..<y.count { y[j] = alpha * x[j] }
    }

    /// y = A·x for a dense row-major n×n matrix A.
    static func multiply(
        _ a: UnsafeBufferPointer<Double>, _ x: UnsafeBufferPointer<Double>, into y: UnsafeMutableBufferPointer<Double>
    ) {
        let n = x.count
        precondition(a.count >= n * n && y.count == n)
        for i in 0..<n {
            let row = UnsafeBufferPointer(rebasing: a[(i * n)..<(i * n + n)])
            y[i] = dot(row, x)
        }
    }

    static func isFinite(_ a: UnsafeBufferPointer<Double>) -> Bool {
        for value in a where !value.isFinite { return false }
        return true
    }
}

/// How the objective's points are represented: the rounding an optimizer must expect (finite
/// differences take steps the evaluation point can actually make).
enum EvaluationPrecision {
    /// Through Float32 parameters: the closure sees `Float(x)`.
    case float32
    /// Through a Float64 flat objective.
    case float64

    /// The unit roundoff of the evaluation point.
    var epsilon: Double {
        switch self {
        case .float32: Double(Float.ulpOfOne)
        case .float64: Double.ulpOfOne
        }
    }

    /// `value` as the evaluation will see it.
    func representable(_ value: Double) -> Double {
        switch self {
        case .float32: Double(Float(value))
        case .float64: value
        }
    }
}

// MARK: - Parameters ↔ flat vector

/// The bridge between Float32 parameters and a Float64 flat vector: the master copy `x`,
/// scattering a point into the parameters and gathering their gradients.
final class ParameterVector {
    let parameters: [Parameter]
    let count: Int
    /// The master copy of the parameter values in Float64.
    let master: FlatBuffer
    private var hasMaster = false

    init(_ parameters: [Parameter]) {
        self.parameters = parameters
        count = parameters.reduce(0) { $0 + $1.count }
        master = FlatBuffer(count: count)
    }

    /// Makes the master copy agree with the parameters: keeps it when the parameters still hold
    /// `Float(master)` (the previous step's result), reloads it from them otherwise.
    func synchronize() {
        var offset = 0
        var agrees = hasMaster
        if agrees {
            outer: for parameter in parameters {
                let p = parameter.value.values
                precondition(offset + p.count <= count, "parameter \(parameter.name) changed size since the optimizer was made")
                for j in 0..<p.count where p[j] != Float(master.values[offset + j]) {
                    agrees = false
                    break outer
                }
                offset += p.count
            }
        }
        if agrees { return }
        offset = 0
        for parameter in parameters {
            let p = parameter.value.values
            precondition(offset + p.count <= count, "parameter \(parameter.name) changed size since the optimizer was made")
            for j in 0..<p.count { master.values[offset + j] = Double(p[j]) }
            offset += p.count
        }
        precondition(offset == count, "the parameters changed size since the optimizer was made")
        hasMaster = true
    }

    /// Writes `Float(x)` into the parameter values.
    func write(_ x: UnsafeBufferPointer<Double>) {
        precondition(x.count == count)
        var offset = 0
        for parameter in parameters {
            let p = parameter.value.values
            for j in 0..<p.count { p[j] = Float(x[offset + j]) }
            offset += p.count
        }
    }

    /// Reads the parameter gradients into `gradient` as Float64.
    func readGradient(into gradient: UnsafeMutableBufferPointer<Double>) {
        precondition(gradient.count == count)
        var offset = 0
        for parameter in parameters {
            let g = parameter.gradient.values
            precondition(g.count == parameter.count, "parameter \(parameter.name): gradient and value sizes differ")
            for j in 0..<g.count { gradient[offset + j] = Double(g[j]) }
            offset += g.count
        }
    }

    /// The closure at point `x`: scatter, evaluate, gather.
    func evaluate(
        _ evaluate: LossAndGradient, at x: UnsafeBufferPointer<Double>, gradient: UnsafeMutableBufferPointer<Double>
    ) -> Double {
        write(x)
        let loss = evaluate()
        readGradient(into: gradient)
        return loss
    }

    /// Runs `body` (an optimizer's iterations on the master copy), then leaves `Float(master)` in the parameters.
    func run(
        _ evaluate: LossAndGradient,
        _ body: (_ x: UnsafeMutableBufferPointer<Double>, _ objective: FlatLossAndGradient) -> Double
    ) -> Double {
        synchronize()
        // Two non-escaping closures may not capture each other (re-entrancy rule); neither outlives this call.
        let loss = withoutActuallyEscaping(evaluate) { evaluate in
            body(master.values) { x, gradient in self.evaluate(evaluate, at: x, gradient: gradient) }
        }
        write(master.readable)
        return loss
    }
}
