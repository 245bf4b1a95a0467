import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// `init: {"from_job", "freeze"}`: starting from a trained model's weights.
@Suite("Transfer learning")
struct TransferLearningTests {
    /// The digits whose label is in `labels`, relabeled 0…k−1 (as a fresh upload of that subset would be).
    private func digitsSubset(labeled labels: [String]) throws -> TabularDataset {
        let all = try digits()
        let rows = all.classIndices.indices.filter { labels.contains(all.classes![Int(all.classIndices[$0])]) }
        var subset = all.subset(rows)
        subset.classIndices = rows.map { Int32(labels.firstIndex(of: all.classes![Int(all.classIndices[$0])])!) }
        subset.classes = labels
        subset.targetCount = labels.count
        return subset
    }

    private let cnn = """
    {"input_shape": [1, 8, 8], "layers": [
      {"type": "conv2d", "filters": 16, "kernel": 3, "padding": "same", "activation": "relu"}, {"type": "max_pool2d"},
      {"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}, {"type": "max_pool2d"},
      {"type": "flatten"}, {"type": "dense", "units": 5}]}
    """

    private func spec(epochs: Int, initialization: String = "") -> String {
        """
        {"dataset": {"id": "ds_digits"}, "validation": {"split": 0.3}, "model": \(cnn),
         "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9}, "training": {"epochs": \(epochs), "batch_size": 32, "seed": 3}\(initialization)}
        """
    }

    private func epochsTo(_ accuracy: Double, _ outcome: TrainingOutcome) -> Int? {
        outcome.history.first { ($0.validationAccuracy ?? 0) >= accuracy }?.epoch
    }

    @Test func aCNNTrainedOnDigitsZeroToFourLearnsFiveToNineInFewerEpochsThanFromScratch() throws {
        let (_, source) = try train(spec(epochs: 10), on: digitsSubset(labeled: ["0", "1", "2", "3", "4"]))
        let target = try digitsSubset(labeled: ["5", "6", "7", "8", "9"])
        let (fineTuneSpec, fineTuneData) = try prepare(try JobSpec.parse(json(spec(epochs: 8, initialization: #", "init": {"from_job": "job_source", "freeze": [0]}"#))), on: target)
        let transfer = WeightTransfer(source: source.model.network, freeze: fineTuneSpec.initialization!.freeze)
        let fineTuner = try Trainer(spec: fineTuneSpec, data: fineTuneData, transfer: transfer)
        let frozen = fineTuner.network.layers[0].parameters[0].value.array
        #expect(frozen == source.model.network.layers[0].parameters[0].value.array, "layer 0 starts from the source")
        let fineTuned = try fineTuner.run()
        #expect(fineTuner.network.layers[0].parameters[0].value.array == frozen, "a frozen layer keeps its weights")
        let (_, scratch) = try train(spec(epochs: 8), on: target)
        let goal = 0.9
        let fine = epochsTo(goal, fineTuned), fresh = epochsTo(goal, scratch)
        print("[figures] digits 5–9: \(goal) validation accuracy after \(fine.map(String.init) ?? "—") epochs fine-tuned from 0–4, \(fresh.map(String.init) ?? "—") from scratch; final \(fineTuned.history.last!.validationAccuracy!) vs \(scratch.history.last!.validationAccuracy!)")
        #expect(try #require(fine) < fresh ?? Int.max)
    }

    @Test func layersThatDoNotLineUpAreNamedWithBothShapes() throws {
        let source = try JobSpec.parse(json(spec(epochs: 1))).model
        var sourceSpec = source
        sourceSpec.inputShape = [1, 8, 8]
        var target = sourceSpec
        target.layers[2] = .conv2d(filters: 24, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .relu)
        let issue = try #require(WeightTransfer.mismatch(source: sourceSpec, target: target))
        #expect(issue.path == "model.layers[2]")
        #expect(issue.message.contains("[24, 4, 4]") && issue.message.contains("[32, 4, 4]"))
        var resizedHead = sourceSpec
        resizedHead.layers[5] = .dense(units: 3, activation: .linear, bias: true)
        #expect(WeightTransfer.mismatch(source: sourceSpec, target: resizedHead) == nil, "the output layer may change size")
    }

    @Test func theInitSpecIsReadAndFreezeIndicesAreChecked() throws {
        let parsed = try JobSpec.parse(json(spec(epochs: 1, initialization: #", "init": {"from_job": "job_1", "freeze": [1, 0, 1]}"#)))
        #expect(parsed.initialization == InitSpec(fromJob: "job_1", freeze: [0, 1]))
        #expect(parsed.jsonValue["init"] == ["from_job": "job_1", "freeze": [0, 1]])
        let tooFar = try JobSpec.parse(json(spec(epochs: 1, initialization: #", "init": {"from_job": "job_1", "freeze": [9]}"#)))
        #expect(throws: SpecProblems.self) { try tooFar.resolved(for: DatasetSummary(self.digitsSubset(labeled: ["5", "6", "7", "8", "9"]))) }
        #expect(problems(spec(epochs: 1, initialization: #", "init": {"freeze": [0]}"#)).map(\.path) == ["init.from_job"])
    }
}
