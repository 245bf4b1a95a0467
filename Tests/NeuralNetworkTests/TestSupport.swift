import Foundation
import NeuralNetwork
import ReferenceFixtures
import Tensors

// Helpers shared by the NeuralNetwork suites: fixture tensors, seeded random inputs, and the
// central-difference gradient check.

/// Tolerance of `reference/README.md` for layers: max abs error ≤ 1e-4 · max(1, max|expected|).
let layerTolerance = 1e-4
/// Tolerance of `reference/README.md` for losses: 1e-5 relative.
let lossTolerance = 1e-5

/// The central-difference check's tolerance, normwise relative:
///   max_i |analytic_i − numeric_i| ≤ 1e-3 · max(max_i |numeric_i|, max_i |analytic_i|).
/// Layers run in float32 with a step h = 1e-2 (the divisor is the step actually taken in float32); L is
/// summed in Double. The float32 rounding of the forward pass divided by 2h is ~1e-5 of the loss, the
/// truncation error h²/6 · f‴ ~2e-5 · |f‴|: the checks measure at most ~4e-5, so 1e-3 leaves a 25× margin
/// while any wrong term of a derivative shows up at 1e-2 to 1.
let gradientCheckTolerance = 1e-3
let gradientCheckStep: Float = 1e-2

extension Tensor {
    convenience init(_ fixture: FixtureTensor) {
        self.init(shape: fixture.shape, values: fixture.floats)
    }

    /// Overwrites the values (same count) without reallocating.
    func load(_ fixture: FixtureTensor) {
        precondition(fixture.data.count == count, "fixture has \(fixture.data.count) values for \(shape)")
        for i in 0..<count { self[i] = Float(fixture.data[i]) }
    }

    func load(_ values: [Float]) {
        precondition(values.count == count)
        for i in 0..<count { self[i] = values[i] }
    }
}

/// A tensor of uniform draws in `range`.
func randomTensor(_ shape: [Int], in range: ClosedRange<Float> = -2...2, generator: inout SeededGenerator) -> Tensor {
    let tensor = Tensor(shape: shape)
    for i in 0..<tensor.count { tensor[i] = generator.uniform(range.lowerBound, range.upperBound) }
    return tensor
}

func randomValues(_ count: Int, in range: ClosedRange<Float> = -1...1, generator: inout SeededGenerator) -> [Float] {
    (0..<count).map { _ in generator.uniform(range.lowerBound, range.upperBound) }
}

/// Σ output ⊙ weights, accumulated in Double: the scalar whose gradient w.r.t. output is `weights`.
func weightedSum(_ output: Tensor, _ weights: [Float]) -> Double {
    precondition(output.count == weights.count)
    var total = 0.0
    for i in 0..<output.count { total += Double(output[i]) * Double(weights[i]) }
    return total
}

/// dL/dt for every element of `tensor` by central differences, perturbing it in place and restoring it.
/// The divisor is the perturbation actually made in float32, (t + h) − (t − h), not 2h.
func numericalGradient(of tensor: Tensor, step h: Float = gradientCheckStep, loss: () -> Double) -> [Double] {
    var gradient = [Double](repeating: 0, count: tensor.count)
    for i in 0..<tensor.count {
        let original = tensor[i]
        let plus = original + h
        let minus = original - h
        tensor[i] = plus
        let lossPlus = loss()
        tensor[i] = minus
        let lossMinus = loss()
        tensor[i] = original
        gradient[i] = (lossPlus - lossMinus) / Double(plus - minus)
    }
    return gradient
}

/// Normwise relative error of an analytic gradient against a numerical one (see `gradientCheckTolerance`).
func gradientError(analytic: [Float], numeric: [Double]) -> Double {
    precondition(analytic.count == numeric.count, "length \(analytic.count) vs \(numeric.count)")
    var worst = 0.0
    var scale = 1e-12
    for (a, n) in zip(analytic, numeric) {
        worst = max(worst, abs(Double(a) - n))
        scale = max(scale, abs(n), abs(Double(a)))
    }
    return worst / scale
}

/// Relative error of a loss value, and max abs gradient error relative to the largest expected gradient.
func relativeError(_ actual: Double, _ expected: Double) -> Double {
    abs(actual - expected) / max(abs(expected), 1e-12)
}

func relativeMaxError(_ actual: [Float], _ expected: [Double]) -> Double {
    maxAbsError(actual, expected) / max(expected.map(abs).max() ?? 0, 1e-12)
}

extension ActivationFunction {
    /// Inputs where f′ or f″ jumps; a central difference across one is wrong by O(1) or O(h).
    var kinks: [Float] {
        switch self {
        case .relu, .leaky_relu, .elu: [0]
        case .relu6: [0, 6]
        case .softplus: [20]
        case .gelu, .silu, .tanh, .sigmoid, .linear: []
        }
    }

    /// Whether `value` is at least `margin` away from every kink.
    func isSmooth(at value: Double, margin: Double) -> Bool {
        kinks.allSatisfy { abs(value - Double($0)) >= margin }
    }
}

/// Checks that the analytic gradients of `layer` (input and every parameter) match central differences of
/// L = Σ layer(x) ⊙ R. `prepare` runs before every forward (dropout reseeds its generator there).
/// Returns the worst normwise relative error per gradient, keyed "input", "weight", ….
func checkLayerGradients(
    _ layer: any Layer, input x: Tensor, isTraining: Bool = true, seed: UInt64, prepare: () -> Void = {}
) -> [String: Double] {
    var generator = SeededGenerator(seed: seed, purpose: "gradient-check")
    prepare()
    let y = layer.forward(x, isTraining: isTraining)
    let r = randomValues(y.count, generator: &generator)
    let dy = Tensor(shape: y.shape, values: r)
    for parameter in layer.parameters { parameter.zeroGradient() }
    let analyticInput = layer.backward(dy, needsInputGradient: true)?.array ?? []
    let analyticParameters = layer.parameters.map { ($0.name, $0.gradient.array) }

    func loss() -> Double {
        prepare()
        return weightedSum(layer.forward(x, isTraining: isTraining), r)
    }
    var errors: [String: Double] = [:]
    errors["input"] = gradientError(analytic: analyticInput, numeric: numericalGradient(of: x, loss: loss))
    for (parameter, (name, analytic)) in zip(layer.parameters, analyticParameters) {
        errors[name] = gradientError(analytic: analytic, numeric: numericalGradient(of: parameter.value, loss: loss))
    }
    return errors
}

/// Parses a model spec from JSON text at path `model`.
func parseModel(_ json: String) throws -> (spec: ModelSpec?, issues: [SpecIssue]) {
    let value = try JSONValue.parse(Data(json.utf8))
    let diagnostics = SpecDiagnostics()
    let spec = ModelSpec.parse(value, path: "model", diagnostics: diagnostics)
    return (spec, diagnostics.issues)
}

/// Prints one line of measured errors, so a test run shows how much margin each reference comparison has.
func reportErrors(_ label: String, _ errors: [(String, Double)]) {
    let parts = errors.map { "\($0.0) \(String(format: "%.2e", $0.1))" }.joined(separator: ", ")
    print("[errors] \(label): \(parts)")
}

/// z = x·Wᵀ + b of a dense layer, in Double.
func preActivations(_ dense: Dense, _ x: Tensor) -> [Double] {
    var z: [Double] = []
    for row in 0..<x.rows {
        for o in 0..<dense.units {
            var sum = Double(dense.bias?.value[o] ?? 0)
            for i in 0..<dense.inputCount {
                sum += Double(x[row * dense.inputCount + i]) * Double(dense.weight.value[o * dense.inputCount + i])
            }
            z.append(sum)
        }
    }
    return z
}
