import Foundation
import Testing
import Optimizers
import Tensors

// Shared by the second-order suites (L-BFGS, BFGS, Newton): closures over the closed-form problems
// of `reference/optimizers.json` (see OptimizerFixtures.swift), in the two ways an optimizer can
// run, a trajectory runner, and the comparison of a Float64 trajectory.

/// The tolerance of the reference README for an optimizer run in Float64: 1e-4 relative on every step.
let float64TrajectoryTolerance = 1e-4

/// How a second-order optimizer sees the problem.
enum EvaluationPath: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Float32 parameters; the closure computes the loss and gradient in Float64 at their values and
    /// stores the gradient in the Float32 gradient tensors (what training does).
    case float32Parameters
    /// A flat Float64 vector and a Float64 objective (`step(_:evaluate:)`): no Float32 anywhere.
    case float64Vector

    var description: String { rawValue }
}

/// The closure of `step(_:)` on `problem`: loss at the parameters' values, closed-form gradient into
/// their gradient tensors.
func makeClosure(_ problem: Problem, _ parameters: [Parameter]) -> LossAndGradient {
    {
        let x = parameters.flatMap(\.value.array).map { Double($0) }
        let gradient = problem.gradient(x)
        var offset = 0
        for parameter in parameters {
            parameter.zeroGradient()
            for j in 0..<parameter.count { parameter.gradient[j] = Float(gradient[offset + j]) }
            offset += parameter.count
        }
        return problem.loss(x)
    }
}

/// The objective of `step(_:evaluate:)` on `problem`, in Float64.
func makeFlatObjective(_ problem: Problem) -> FlatLossAndGradient {
    { x, gradient in
        let point = Array(x)
        let g = problem.gradient(point)
        for j in g.indices { gradient[j] = g[j] }
        return problem.loss(point)
    }
}

/// What a second-order optimizer is made from: parameters (Float32 path) or a dimension (Float64 path).
enum OptimizerSubject {
    case parameters([Parameter])
    case dimension(Int)
}

/// Drives a second-order optimizer on `problem` from `x0` along one path for `steps` steps and
/// returns the point after each step, in Float64 (the parameters' Float32 values on that path).
func runSecondOrder(
    _ problem: Problem, from x0: [Double], steps: Int, path: EvaluationPath, split: [Int]? = nil,
    make: (OptimizerSubject) throws -> any SecondOrderOptimizer
) throws -> (trajectory: [[Double]], optimizer: any SecondOrderOptimizer) {
    var trajectory: [[Double]] = []
    switch path {
    case .float32Parameters:
        let parameters = makeParameters(x0.map { Float($0) }, split: split)
        let optimizer = try make(.parameters(parameters))
        let closure = makeClosure(problem, parameters)
        for _ in 0..<steps {
            optimizer.step(closure)
            trajectory.append(parameters.flatMap(\.value.array).map { Double($0) })
        }
        return (trajectory, optimizer)
    case .float64Vector:
        let optimizer = try make(.dimension(x0.count))
        let objective = makeFlatObjective(problem)
        var x = x0
        for _ in 0..<steps {
            optimizer.step(&x, evaluate: objective)
            trajectory.append(x)
        }
        return (trajectory, optimizer)
    }
}

/// `TrajectoryError`'s measures for a Float64 trajectory: the asserted element-wise
/// max |actual − expected| / max(|expected|, 1e-3), and the step ∞-norm relative error.
struct Float64TrajectoryError: CustomStringConvertible {
    let relative: Double
    let step: Int
    let elementwise: Double

    init(_ actual: [[Double]], _ expected: [[Double]]) {
        precondition(actual.count == expected.count)
        var relative = 0.0, step = 0, elementwise = 0.0
        for (k, (a, e)) in zip(actual, expected).enumerated() {
            precondition(a.count == e.count)
            var difference = 0.0, scale = 0.0
            for (aj, ej) in zip(a, e) {
                let d = abs(aj - ej)
                difference = max(difference, d.isNaN ? .infinity : d)
                scale = max(scale, abs(ej))
                elementwise = max(elementwise, d.isNaN ? .infinity : d / max(abs(ej), 1e-3))
            }
            let stepError = difference / max(scale, .leastNormalMagnitude)
            if stepError > relative || step == 0 { relative = stepError; step = k + 1 }
        }
        self.relative = relative
        self.step = step
        self.elementwise = elementwise
    }

    func isWithin(_ tolerance: Double) -> Bool { elementwise <= tolerance }

    var description: String {
        "max element-wise relative error \(elementwise.formatted3), max step ∞-norm relative error \(relative.formatted3) (step \(step))"
    }
}

/// max |xᵢ − 1|: the distance to Rosenbrock's minimizer (1, …, 1).
func distanceToOnes(_ x: [Double]) -> Double { x.map { abs($0 - 1) }.max() ?? 0 }

/// max |gᵢ|
func gradientNorm(_ problem: Problem, at x: [Double]) -> Double { problem.gradient(x).map(abs).max() ?? 0 }

/// The first case of `optimizer` on a problem of `kind` in the reference file.
func secondOrderCase(_ optimizer: String, kind: String) throws -> OptimizerCase {
    guard let found = try OptimizerCase.all().first(where: { $0.optimizer == optimizer && $0.problem.kind == kind }) else {
        throw NSError(domain: "no \(optimizer) case on \(kind) in optimizers.json", code: 1)
    }
    return found
}

/// A made-up binary classification set where the classes overlap (so the logistic loss has a
/// finite minimizer): 200 points in 4-D, labels from a noisy linear rule; a fixed LCG, no RNG state.
func overlappingLogisticProblem() -> Problem {
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    func uniform() -> Double {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(seed >> 11) / Double(1 << 53)
    }
    let truth = [1.5, -2.0, 0.5, 1.0]
    var rows: [[Double]] = [], labels: [Double] = []
    for _ in 0..<200 {
        let row = (0..<4).map { _ in uniform() * 2 - 1 }
        let margin = zip(row, truth).reduce(0) { $0 + $1.0 * $1.1 } + (uniform() - 0.5) * 2.5
        rows.append(row)
        labels.append(margin > 0 ? 1 : 0)
    }
    return .logistic(x: rows, y: labels)
}

/// x with A·x = b by Gaussian elimination with partial pivoting (small dense systems in tests).
func solveLinearSystem(_ a: [[Double]], _ b: [Double]) throws -> [Double] {
    let n = b.count
    var m = a, v = b
    for column in 0..<n {
        let pivot = (column..<n).max { abs(m[$0][column]) < abs(m[$1][column]) }!
        m.swapAt(column, pivot)
        v.swapAt(column, pivot)
        guard m[column][column] != 0 else { throw NSError(domain: "singular", code: 1) }
        for row in (column + 1)..<n {
            let factor = m[row][column] / m[column][column]
            for k in column..<n { m[row][k] -= factor * m[column][k] }
            v[row] -= factor * v[column]
        }
    }
    var x = [Double](repeating: 0, count: n)
    for row in stride(from: n - 1, through: 0, by: -1) {
        var sum = v[row]
        for k in (row + 1)..<n { sum -= m[row][k] * x[k] }
        x[row] = sum / m[row][row]
    }
    return x
}

/// The minimizer of `problem` by undamped Newton in Float64, to max|g| ≤ 1e-11.
func newtonSolution(_ problem: Problem, dimension: Int) throws -> [Double] {
    let newton = try Newton(dimension: dimension, hyperparameters: NewtonHyperparameters(damping: 0, maxIter: 50, toleranceGrad: 1e-12, toleranceChange: 0))
    var x = [Double](repeating: 0, count: dimension)
    newton.step(&x, evaluate: makeFlatObjective(problem))
    try #require(gradientNorm(problem, at: x) <= 1e-11)
    return x
}
