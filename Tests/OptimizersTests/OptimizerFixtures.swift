import Foundation
import Optimizers
import ReferenceFixtures
import Tensors

// Shared by the optimizer suites: the closed-form problems of `reference/optimizers.json`, a runner
// that drives an optimizer along torch's trajectory, and the comparison with its tolerance.

/// The tolerance of the reference README for a Float32 engine: 1e-3 relative on every step.
let trajectoryTolerance = 1e-3

/// A closed-form objective of the reference file, evaluated in Double.
enum Problem: Sendable {
    /// f(x) = ½ xᵀAx − bᵀx
    case quadratic(a: [[Double]], b: [Double])
    /// f(x) = Σᵢ 100·(x[i+1] − x[i]²)² + (1 − x[i])², i = 0 … n−2
    case rosenbrock
    /// f(w) = meanᵢ softplus(−sᵢ·Xᵢ·w), sᵢ = 2yᵢ − 1 (binary cross-entropy with logits, no bias, no regularizer)
    case logistic(x: [[Double]], y: [Double])

    /// The formula strings these implementations were written from; a fixture with another formula is refused.
    static let formulas = [
        "quadratic": "f(x) = 0.5 * x^T A x - b^T x",
        "rosenbrock": "f(x) = sum_i 100*(x[i+1]-x[i]^2)^2 + (1-x[i])^2",
        "logistic": "f(w) = mean_i softplus(-s_i * X_i.w), s_i = 2*y_i-1  (binary cross-entropy with logits, no bias)",
    ]

    init(_ json: [String: Any]) throws {
        let kind = json.string("kind") ?? "?"
        guard let formula = Self.formulas[kind], json.string("formula") == formula else {
            throw FixtureError.malformed("problem \(kind) with formula \(json.string("formula") ?? "nil") is not one the tests know")
        }
        func rows(_ tensor: FixtureTensor) -> [[Double]] {
            let columns = tensor.shape[1]
            return (0..<tensor.shape[0]).map { Array(tensor.data[$0 * columns..<($0 + 1) * columns]) }
        }
        switch kind {
        case "quadratic": self = .quadratic(a: rows(try json.tensor("A")), b: try json.tensor("b").data)
        case "rosenbrock": self = .rosenbrock
        default: self = .logistic(x: rows(try json.tensor("X")), y: try json.tensor("y").data)
        }
    }

    var kind: String {
        switch self {
        case .quadratic: "quadratic"
        case .rosenbrock: "rosenbrock"
        case .logistic: "logistic"
        }
    }

    func loss(_ x: [Double]) -> Double {
        switch self {
        case .quadratic(let a, let b):
            var value = 0.0
            for i in x.indices {
                for j in x.indices { value += 0.5 * x[i] * a[i][j] * x[j] }
                value -= b[i] * x[i]
            }
            return value
        case .rosenbrock:
            var value = 0.0
            for i in 0..<(x.count - 1) {
                let r = x[i + 1] - x[i] * x[i]
                value += 100 * r * r + (1 - x[i]) * (1 - x[i])
            }
            return value
        case .logistic(let rows, let labels):
            var total = 0.0
            for (row, label) in zip(rows, labels) {
                let margin = (2 * label - 1) * dot(row, x)
                total += softplus(-margin)
            }
            return total / Double(rows.count)
        }
    }

    /// The closed-form gradient of `loss`.
    func gradient(_ x: [Double]) -> [Double] {
        var g = [Double](repeating: 0, count: x.count)
        switch self {
        case .quadratic(let a, let b):
            // ∇ = ½(A + Aᵀ)x − b  (= Ax − b for the symmetric A of the fixtures)
            for i in x.indices {
                for j in x.indices { g[i] += 0.5 * (a[i][j] + a[j][i]) * x[j] }
                g[i] -= b[i]
            }
        case .rosenbrock:
            for i in 0..<(x.count - 1) {
                let r = x[i + 1] - x[i] * x[i]
                g[i] += -400 * x[i] * r - 2 * (1 - x[i])
                g[i + 1] += 200 * r
            }
        case .logistic(let rows, let labels):
            // d/dw softplus(−s·X·w) = −σ(−s·X·w)·s·X
            for (row, label) in zip(rows, labels) {
                let sign = 2 * label - 1
                let weight = -sign / (1 + exp(sign * dot(row, x))) / Double(rows.count)
                for j in x.indices { g[j] += weight * row[j] }
            }
        }
        return g
    }

    private func dot(_ u: [Double], _ v: [Double]) -> Double { zip(u, v).reduce(0) { $0 + $1.0 * $1.1 } }
    private func softplus(_ z: Double) -> Double { max(z, 0) + log1p(exp(-abs(z))) }
}

/// One case of `optimizers.json`, parsed into Sendable values.
struct OptimizerCase: Sendable, CustomStringConvertible {
    let optimizer: String
    /// The `hyperparameters` object as JSON (spec names), to decode into `…Hyperparameters`.
    let hyperparametersJSON: Data
    let problem: Problem
    let x0: [Double]
    /// trajectory[k] = parameters after step k + 1.
    let trajectory: [[Double]]
    /// loss[k] = f(trajectory[k]).
    let losses: [Double]

    static func all() throws -> [OptimizerCase] {
        try ReferenceFixtures.cases("optimizers").map(OptimizerCase.init)
    }

    /// The cases of `optimizer` on `kind` whose hyperparameters satisfy `matches`.
    static func cases<H: Decodable>(
        _ optimizer: String, as type: H.Type, where matches: (H) -> Bool
    ) throws -> [(OptimizerCase, H)] {
        try all().filter { $0.optimizer == optimizer }.compactMap { testCase in
            let hyperparameters = try testCase.decodeHyperparameters(as: H.self)
            return matches(hyperparameters) ? (testCase, hyperparameters) : nil
        }
    }

    init(_ json: [String: Any]) throws {
        optimizer = json.string("optimizer") ?? ""
        hyperparametersJSON = try JSONSerialization.data(withJSONObject: json.object("hyperparameters"), options: [.sortedKeys])
        problem = try Problem(json.object("problem"))
        guard let x0 = json["x0"] as? [Double], let trajectory = json["trajectory"] as? [[Double]],
              let losses = json["loss"] as? [Double], let steps = json.int("steps"),
              trajectory.count == steps, losses.count == steps, trajectory.allSatisfy({ $0.count == x0.count })
        else { throw FixtureError.malformed("optimizer case without x0, steps, trajectory or loss") }
        self.x0 = x0
        self.trajectory = trajectory
        self.losses = losses
    }

    func decodeHyperparameters<H: Decodable>(as type: H.Type) throws -> H {
        try JSONDecoder().decode(H.self, from: hyperparametersJSON)
    }

    var description: String {
        "\(optimizer) \(String(decoding: hyperparametersJSON, as: UTF8.self)) on \(problem.kind)"
    }
}

/// Runs `testCase`'s problem from `x0` for as many steps as its trajectory has, and returns the
/// parameters after each step. Each step: the closed-form gradient in Double at the current
/// Float32 parameters goes into the parameter gradients, then `optimizer.step()`.
///
/// `split` cuts the vector into several parameters of these sizes (default: one parameter).
func runTrajectory(
    of testCase: OptimizerCase, split: [Int]? = nil,
    makeOptimizer: ([Parameter]) throws -> any Optimizer
) throws -> [[Float]] {
    let parameters = makeParameters(testCase.x0.map { Float($0) }, split: split)
    let optimizer = try makeOptimizer(parameters)
    return advance(optimizer, on: testCase.problem, steps: testCase.trajectory.count)
}

/// Like `runTrajectory`, but checkpoints after `checkpointStep` steps: copies the parameters and
/// `stateTensors()`, then continues with a new optimizer on new parameters, restored from the copies.
func runTrajectoryResumed(
    of testCase: OptimizerCase, at checkpointStep: Int, split: [Int]? = nil,
    makeOptimizer: ([Parameter]) throws -> any Optimizer
) throws -> [[Float]] {
    let first = try makeOptimizer(makeParameters(testCase.x0.map { Float($0) }, split: split))
    var trajectory = advance(first, on: testCase.problem, steps: checkpointStep)
    let savedState = first.stateTensors().mapValues { $0.clone() }
    let savedValues = first.parameters.flatMap(\.value.array)

    let second = try makeOptimizer(makeParameters(savedValues, split: split))
    try second.restoreState(from: savedState)
    trajectory += advance(second, on: testCase.problem, steps: testCase.trajectory.count - checkpointStep)
    return trajectory
}

func makeParameters(_ values: [Float], split: [Int]?) -> [Parameter] {
    let sizes = split ?? [values.count]
    precondition(sizes.reduce(0, +) == values.count)
    var offset = 0
    return sizes.enumerated().map { index, size in
        defer { offset += size }
        return Parameter(name: "x\(index)", value: Tensor(shape: [size], values: Array(values[offset..<offset + size])), isWeight: true)
    }
}

/// `steps` steps of `optimizer` on `problem`; the parameters after each.
func advance(_ optimizer: any Optimizer, on problem: Problem, steps: Int) -> [[Float]] {
    let parameters = optimizer.parameters
    var trajectory: [[Float]] = []
    for _ in 0..<steps {
        let gradient = problem.gradient(parameters.flatMap(\.value.array).map { Double($0) })
        var offset = 0
        for parameter in parameters {
            for j in 0..<parameter.count { parameter.gradient[j] = Float(gradient[offset + j]) }
            offset += parameter.count
        }
        optimizer.step()
        trajectory.append(parameters.flatMap(\.value.array))
    }
    return trajectory
}

/// How far a trajectory is from the reference.
///
/// The comparison asserted, on every element j of every step k (the README's "1e-3 relative on
/// every step" for a Float32 engine, with a floor for elements near zero):
///
///     |actual_kj − expected_kj| ≤ 1e-3 · max(|expected_kj|, 1e-3)
///
/// `elementwise` is the largest |actual − expected| / max(|expected|, 1e-3), which must be ≤ 1e-3.
/// `relative` is reported alongside: the largest over steps of ‖actual_k − expected_k‖∞ / ‖expected_k‖∞.
/// A NaN anywhere counts as an infinite error.
struct TrajectoryError: CustomStringConvertible {
    /// max_k ‖actual_k − expected_k‖∞ / ‖expected_k‖∞
    let relative: Double
    /// The step (1-based) where `relative` occurs.
    let step: Int
    /// max_kj |actual_kj − expected_kj| / max(|expected_kj|, 1e-3): the asserted one.
    let elementwise: Double

    init(_ actual: [[Float]], _ expected: [[Double]]) {
        precondition(actual.count == expected.count)
        var relative = 0.0, step = 0, elementwise = 0.0
        for (k, (a, e)) in zip(actual, expected).enumerated() {
            precondition(a.count == e.count)
            var difference = 0.0, scale = 0.0
            for (aj, ej) in zip(a, e) {
                let d = abs(Double(aj) - ej)
                difference = max(difference, d)
                scale = max(scale, abs(ej))
                elementwise = max(elementwise, d.isNaN ? .infinity : d / max(abs(ej), 1e-3))
            }
            var stepError = difference / max(scale, .leastNormalMagnitude)
            if stepError.isNaN { stepError = .infinity }  // a NaN parameter is the worst error
            if stepError > relative || step == 0 { relative = stepError; step = k + 1 }
        }
        self.relative = relative
        self.step = step
        self.elementwise = elementwise
    }

    var isWithinTolerance: Bool { elementwise <= trajectoryTolerance }

    var description: String {
        "max element-wise relative error \(elementwise.formatted3), max step ∞-norm relative error \(relative.formatted3) (step \(step))"
    }
}

extension Double {
    var formatted3: String { String(format: "%.3g", self) }
}
