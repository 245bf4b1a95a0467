import Datasets
import NeuralNetwork
import Testing
@testable import Training

@Suite("JobSpec.resolved(for:)")
struct ResolvedSpecTests {
    /// 100 rows of 2 features and 3 classes, like the spirals.
    let threeClasses = DatasetSummary(rows: 100, sampleShape: [2], task: .classification, classCount: 3, targetCount: 3)
    /// 100 rows of 3 features and one numeric target.
    let regression = DatasetSummary(rows: 100, sampleShape: [3], task: .regression, classCount: nil, targetCount: 1)

    func spec(layers: String = #"[{"type": "dense", "units": 3}]"#, _ extra: String = "") throws -> JobSpec {
        try JobSpec.parse(json(#"{"dataset": {"id": "ds_x"}, "model": {"layers": "# + layers + "}" + extra + "}"))
    }

    func issues(_ spec: JobSpec, _ data: DatasetSummary) -> [SpecIssue] {
        do {
            _ = try spec.resolved(for: data)
            return []
        } catch {
            return error.issues
        }
    }

    @Test func theInputShapeIsTakenFromTheData() throws {
        let parsed = try spec()
        #expect(parsed.model.inputShape == nil)
        let resolved = try parsed.resolved(for: threeClasses)
        #expect(resolved.model.inputShape == [2])
        #expect(resolved.model.layers == parsed.model.layers)
        #expect(resolved.jsonValue["model"]?["input_shape"] == [2])

        let images = DatasetSummary(rows: 50, sampleShape: [1, 8, 8], task: .classification, classCount: 3, targetCount: 3)
        #expect(try parsed.resolved(for: images).model.inputShape == [1, 8, 8])

        // The summary of a real dataset gives the same.
        let moons = BuiltinDataset.moons.generate(BuiltinDatasetOptions(samples: 100))
        let twoClasses = try spec(layers: #"[{"type": "dense", "units": 2}]"#)
        #expect(try twoClasses.resolved(for: DatasetSummary(moons)).model.inputShape == [2])
    }

    @Test func anInputShapeThatDisagreesWithTheDataIsRefused() throws {
        let parsed = try JobSpec.parse(json(#"{"dataset": {"id": "ds_x"}, "model": {"input_shape": [64], "layers": [{"type": "dense", "units": 3}]}}"#))
        let found = issues(parsed, threeClasses)
        #expect(found.map(\.path) == ["model.input_shape"])
        #expect(found.first?.message.contains("2 features") == true)
        // An equal count in another shape is accepted and kept.
        let reshaped = try JobSpec.parse(json(#"{"dataset": {"id": "ds_x"}, "model": {"input_shape": [2, 1], "layers": [{"type": "dense", "units": 3}]}}"#))
        #expect(try reshaped.resolved(for: threeClasses).model.inputShape == [2, 1])
    }

    @Test func outputUnitsThatDoNotMatchTheClassesNameTheLastDenseLayer() throws {
        let tooMany = try spec(layers: #"[{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 4}]"#)
        let found = issues(tooMany, threeClasses)
        #expect(found.map(\.path) == ["model.layers[1].units"])
        #expect(found.first?.message.contains("4 outputs") == true)
        #expect(found.first?.message.contains("3 classes") == true)

        // Layers after the last dense one do not change the width: the path names the dense layer.
        let trailing = try spec(layers: #"[{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 5}, {"type": "dropout", "rate": 0.1}, {"type": "activation", "name": "tanh"}]"#)
        #expect(issues(trailing, threeClasses).map(\.path) == ["model.layers[1].units"])

        let regressionMismatch = try spec(layers: #"[{"type": "dense", "units": 2}]"#, #", "loss": "mse""#)
        let regressionIssues = issues(regressionMismatch, regression)
        #expect(regressionIssues.map(\.path) == ["model.layers[0].units"])
        #expect(regressionIssues.first?.message.contains("1 target values per row") == true)
    }

    @Test func crossEntropyOnARegressionDatasetIsRefused() throws {
        let found = issues(try spec(layers: #"[{"type": "dense", "units": 1}]"#), regression)
        #expect(found.map(\.path) == ["loss"])
        #expect(found.first?.message.contains("cross_entropy needs class targets") == true)
    }

    @Test func mseAndHuberOnClassesAreRefused() throws {
        for loss in [#""mse""#, #"{"type": "huber", "delta": 1}"#] {
            let found = issues(try spec(#", "loss": "# + loss), threeClasses)
            #expect(found.map(\.path) == ["loss"], "\(loss)")
            #expect(found.first?.message.contains("use cross_entropy") == true)
        }
        // mse and huber fit a regression dataset.
        let fitting = try spec(layers: #"[{"type": "dense", "units": 1}]"#, #", "loss": "mse""#)
        #expect(try fitting.resolved(for: regression).model.inputShape == [3])
    }

    @Test func binaryCrossEntropyNeedsTwoClassesAndOneOutput() throws {
        let twoClasses = DatasetSummary(rows: 100, sampleShape: [2], task: .classification, classCount: 2, targetCount: 2)
        let oneUnit = try spec(layers: #"[{"type": "dense", "units": 1}]"#, #", "loss": "bce_with_logits""#)
        #expect(try oneUnit.resolved(for: twoClasses).model.inputShape == [2])
        #expect(issues(oneUnit, threeClasses).map(\.path) == ["loss"])
        let twoUnits = try spec(layers: #"[{"type": "dense", "units": 2}]"#, #", "loss": "bce_with_logits""#)
        #expect(issues(twoUnits, twoClasses).map(\.path) == ["loss"])
    }

    @Test func explicitClassWeightsMustHaveOneWeightPerClass() throws {
        let twoWeights = try spec(#", "loss": {"type": "cross_entropy", "class_weights": [1, 2]}"#)
        let found = issues(twoWeights, threeClasses)
        #expect(found.map(\.path) == ["loss.class_weights"])
        #expect(found.first?.message.contains("2 weights") == true)
        #expect(found.first?.message.contains("3 classes") == true)

        let threeWeights = try spec(#", "loss": {"type": "cross_entropy", "class_weights": [1, 2, 3]}"#)
        #expect(issues(threeWeights, threeClasses).isEmpty)
        let balanced = try spec(#", "loss": {"type": "cross_entropy", "class_weights": "balanced"}"#)
        #expect(issues(balanced, threeClasses).isEmpty)
    }

    @Test func everyMismatchWithTheDataIsReportedAtOnce() throws {
        let parsed = try JobSpec.parse(json("""
        {"dataset": {"id": "ds_x"}, "model": {"input_shape": [5], "layers": [{"type": "dense", "units": 4}]},
         "loss": {"type": "cross_entropy", "class_weights": [1]}}
        """))
        #expect(Set(issues(parsed, threeClasses).map(\.path)) == ["model.input_shape", "model.layers[0].units", "loss.class_weights"])
    }

    @Test func aDatasetTooSmallToSplitIsRefused() throws {
        let tiny = DatasetSummary(rows: 1, sampleShape: [2], task: .classification, classCount: 3, targetCount: 3)
        #expect(issues(try spec(#", "validation": {"split": 0.5}"#), tiny).map(\.path) == ["validation.split"])
    }
}
