import Foundation
import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

/// Loss kinds of `losses.json` that this module implements.
let coveredLosses: Set<String> = ["cross_entropy", "mse", "huber", "bce_with_logits"]

/// What a loss is evaluated on: class indices or real-valued targets.
enum LossTargets {
    case classes([Int32])
    case values([Float])
}

extension LossFunction {
    /// Evaluates the loss, returning its value and dL/d(predictions).
    func callAsFunction(_ predictions: Tensor, _ targets: LossTargets) -> (value: Double, gradient: Tensor) {
        let gradient = Tensor(shape: predictions.shape)
        let value: Double
        switch targets {
        case .classes(let classes):
            value = classes.withUnsafeBufferPointer {
                evaluate(predictions: predictions, classTargets: $0.baseAddress, valueTargets: nil, gradient: gradient)
            }
        case .values(let values):
            value = values.withUnsafeBufferPointer {
                evaluate(predictions: predictions, classTargets: nil, valueTargets: $0.baseAddress, gradient: gradient)
            }
        }
        return (value, gradient)
    }
}

/// One `losses.json` case read into the engine's terms.
struct LossFixture {
    let label: String
    let loss: LossFunction
    let predictions: FixtureTensor
    let targets: LossTargets
    let value: Double
    let gradient: FixtureTensor

    init(_ fixture: [String: Any]) throws {
        let name = try #require(fixture.string("loss"))
        let config = fixture.object("config")
        let spec: LossSpec
        var classWeights: [Float]? = nil
        switch name {
        case "cross_entropy":
            let weights = config["class_weights"] as? [Double]
            classWeights = weights?.map(Float.init)
            spec = .crossEntropy(labelSmoothing: config.double("label_smoothing") ?? 0,
                                 classWeights: weights.map(ClassWeighting.explicit))
        case "mse": spec = .mse
        case "huber": spec = .huber(delta: config.double("delta") ?? 1)
        case "bce_with_logits": spec = .bceWithLogits
        default: throw FixtureError.malformed("loss \(name) is not covered")
        }
        loss = LossFunction(spec: spec, classWeights: classWeights)
        let predictionKey = fixture["logits"] != nil ? "logits" : "predictions"
        predictions = try fixture.tensor(predictionKey)
        gradient = try fixture.tensor("\(predictionKey)_grad")
        value = try #require(fixture.double("value"))
        if spec.usesClassTargets {
            // A list of class indices, or a tensor holding them.
            let indices = try (fixture["targets"] as? [Int]) ?? fixture.tensor("targets").data.map { Int($0) }
            targets = .classes(indices.map(Int32.init))
        } else {
            targets = .values(try fixture.tensor("targets").floats)
        }
        let extras = config.filter { $0.key != "reduction" }.map { "\($0.key)=\($0.value)" }.sorted()
        label = ([name] + extras).joined(separator: " ")
    }
}

@Suite("LossFunction")
struct LossFunctionTests {
    @Test("losses match torch's value and gradient for every covered case of losses.json")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("losses").filter { coveredLosses.contains($0.string("loss") ?? "") }
        let kinds = Set(cases.compactMap { $0.string("loss") })
        #expect(kinds == coveredLosses, "every covered loss has at least one fixture case")
        for fixture in cases {
            let reference = try LossFixture(fixture)
            #expect(fixture.object("config").string("reduction") ?? "mean" == "mean")
            let (value, gradient) = reference.loss(Tensor(reference.predictions), reference.targets)
            let valueError = relativeError(value, reference.value)
            let gradientError = relativeMaxError(gradient.array, reference.gradient.data)
            #expect(gradient.shape == reference.gradient.shape)
            #expect(valueError <= lossTolerance, "\(reference.label): value \(value) vs \(reference.value)")
            #expect(gradientError <= lossTolerance, "\(reference.label): gradient relative error \(gradientError)")
            reportErrors("losses.json \(reference.label)", [("value", valueError), ("gradient", gradientError)])
        }
    }

    static let checkedLosses: [(String, LossFunction)] = [
        ("cross_entropy", LossFunction(spec: .crossEntropy(labelSmoothing: 0, classWeights: nil))),
        ("cross_entropy smoothing 0.1", LossFunction(spec: .crossEntropy(labelSmoothing: 0.1, classWeights: nil))),
        ("cross_entropy weighted", LossFunction(spec: .crossEntropy(labelSmoothing: 0, classWeights: .explicit([1, 2, 0.5, 1.5])),
                                                classWeights: [1, 2, 0.5, 1.5])),
        ("cross_entropy weighted and smoothing 0.2",
         LossFunction(spec: .crossEntropy(labelSmoothing: 0.2, classWeights: .explicit([1, 2, 0.5, 1.5])),
                      classWeights: [1, 2, 0.5, 1.5])),
        ("mse", LossFunction(spec: .mse)),
        ("huber delta 0.5", LossFunction(spec: .huber(delta: 0.5))),
        ("bce_with_logits", LossFunction(spec: .bceWithLogits)),
    ]

    @Test("loss gradients match central differences of the loss value", arguments: checkedLosses.indices)
    func gradientCheck(index: Int) throws {
        let (label, loss) = Self.checkedLosses[index]
        var generator = SeededGenerator(seed: 41, purpose: label)
        let predictions = randomTensor([6, 4], in: -3...3, generator: &generator)
        let targets: LossTargets
        switch loss.spec {
        case .crossEntropy:
            targets = .classes((0..<6).map { _ in Int32(generator.next() % 4) })
        case .bceWithLogits:
            targets = .values(randomValues(24, in: 0...1, generator: &generator))
        case .mse, .huber:
            var values = randomValues(24, in: -3...3, generator: &generator)
            if case .huber(let delta) = loss.spec {
                // Keep every residual ≥ 0.1 from ±delta, where the second derivative jumps.
                for i in values.indices where abs(abs(predictions[i] - values[i]) - Float(delta)) < 0.1 {
                    values[i] = predictions[i] - Float(delta) - 0.3
                }
            }
            targets = .values(values)
        }
        let analytic = loss(predictions, targets).gradient.array
        let numeric = numericalGradient(of: predictions) { loss(predictions, targets).value }
        let error = gradientError(analytic: analytic, numeric: numeric)
        #expect(error <= gradientCheckTolerance, "\(label): relative error \(error)")
        reportErrors("gradient check loss \(label)", [("predictions", error)])
    }

    @Test("cross-entropy stays finite for logits far apart")
    func crossEntropyIsStable() {
        let loss = LossFunction(spec: .crossEntropy(labelSmoothing: 0.1, classWeights: nil))
        let logits = Tensor(shape: [2, 3], values: [1000, -1000, 0, -500, 500, 0])
        let (value, gradient) = loss(logits, .classes([1, 1]))
        #expect(value.isFinite)
        #expect(gradient.array.allSatisfy { $0.isFinite })
    }

    @Test("bce with logits stays finite for large logits")
    func bceIsStable() {
        let loss = LossFunction(spec: .bceWithLogits)
        let (value, gradient) = loss(Tensor(shape: [1, 2], values: [200, -200]), .values([0, 1]))
        #expect(abs(value - 200) < 1e-3)
        #expect(gradient.array == [0.5, -0.5])
    }

    @Test("softmaxRows gives each row exp(z) / Σ exp(z), stably")
    func softmax() {
        let logits = Tensor(shape: [2, 3], values: [1, 2, 3, 1000, 1000, -1000])
        let output = Tensor(shape: [2, 3])
        softmaxRows(logits, into: output)
        let e = [1.0, 2.0, 3.0].map { exp($0) }
        let expected = e.map { $0 / e.reduce(0, +) } + [0.5, 0.5, 0]
        #expect(maxAbsError(output.array, expected) < 1e-6)
    }

    @Test("loss specs name themselves as the job spec does")
    func names() {
        #expect(LossSpec.crossEntropy(labelSmoothing: 0, classWeights: nil).name == "cross_entropy")
        #expect(LossSpec.mse.name == "mse")
        #expect(LossSpec.huber(delta: 1).name == "huber")
        #expect(LossSpec.bceWithLogits.name == "bce_with_logits")
        #expect(LossSpec.crossEntropy(labelSmoothing: 0, classWeights: .balanced).usesClassTargets)
        #expect(!LossSpec.mse.usesClassTargets)
    }
}
