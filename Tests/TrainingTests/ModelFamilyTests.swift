import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// Convolutional, efficient (MobileNet/ShuffleNet) and recurrent models trained end to end on
/// real and built-in data, through the same spec → trainer path as every job.
@Suite("Model families")
struct ModelFamilyTests {
    /// Digits as 1×8×8 images, 20 % held out for testing.
    private func digitsImages(model: String, epochs: Int, optimizer: String = #"{"type": "adam", "lr": 0.002}"#) throws -> (Trainer, TrainingOutcome) {
        let text = """
        {"dataset": {"id": "ds_digits"}, "test": {"split": 0.2}, "validation": {"split": 0.1},
         "model": \(model), "optimizer": \(optimizer), "training": {"epochs": \(epochs), "batch_size": 32, "seed": 1}}
        """
        return try train(text, on: digits())
    }

    @Test func aSmallCNNReaches97PercentOnDigitsAsImages() throws {
        let (trainer, outcome) = try digitsImages(model: """
        {"input_shape": [1, 8, 8], "layers": [
          {"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same", "activation": "relu"},
          {"type": "max_pool2d", "kernel": 2},
          {"type": "conv2d", "filters": 64, "kernel": 3, "padding": "same", "activation": "relu"},
          {"type": "max_pool2d", "kernel": 2},
          {"type": "flatten"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 64, "activation": "relu"},
          {"type": "dense", "units": 10}]}
        """, epochs: 20)
        let accuracy = try #require(outcome.test?.accuracy)
        print("[figures] small CNN on digits: test accuracy \(accuracy), parameters \(trainer.network.parameterCount)")
        #expect(accuracy >= 0.97)
    }

    @Test(arguments: [
        (#"{"preset": "lenet", "input_shape": [1, 8, 8]}"#, 20),
        (#"{"preset": "mobilenet_v1", "width_multiplier": 0.5, "input_shape": [1, 8, 8]}"#, 20),
        (#"{"preset": "shufflenet_v1", "width_multiplier": 0.5, "groups": 2, "input_shape": [1, 8, 8]}"#, 20),
    ])
    func aPresetReaches95PercentOnDigits(model: String, epochs: Int) throws {
        let (trainer, outcome) = try digitsImages(model: model, epochs: epochs)
        let accuracy = try #require(outcome.test?.accuracy)
        let size = try #require(trainer.spec.model.size)
        print("[figures] \(model): test accuracy \(accuracy), parameters \(size.parameters), FLOPs/sample \(size.flopsPerSample)")
        #expect(size.parameters == trainer.network.parameterCount)
        #expect(accuracy >= 0.95)
    }

    @Test(arguments: ["lstm", "gru"])
    func aRecurrentNetworkTellsSineFrequenciesApart(cell: String) throws {
        let (_, outcome) = try trainBuiltin("""
        {"dataset": {"builtin": "sine_sequences", "samples": 900, "classes": 3, "noise": 0.2, "seed": 4},
         "model": {"layers": [{"type": "\(cell)", "hidden_size": 32}, {"type": "dense", "units": 3}]},
         "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 15, "batch_size": 32, "seed": 1}}
        """)
        let accuracy = try #require(outcome.history.last?.validationAccuracy)
        print("[figures] \(cell) on sine_sequences: validation accuracy \(accuracy)")
        #expect(accuracy >= 0.95)
    }

    @Test func aCNNWithAResidualBlockLearnsTheShapes() throws {
        let (_, outcome) = try trainBuiltin("""
        {"dataset": {"builtin": "shapes_images", "samples": 800, "classes": 4, "noise": 0.1, "seed": 2},
         "model": {"layers": [
           {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "activation": "relu"},
           {"type": "residual", "layers": [
             {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same"}, {"type": "batch_norm"}, {"type": "activation", "name": "relu"}]},
           {"type": "max_pool2d", "kernel": 2}, {"type": "global_avg_pool2d"}, {"type": "dense", "units": 4}]},
         "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 15, "batch_size": 32, "seed": 1}}
        """)
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.9)
    }

    @Test func aModelWithBatchNormSavesItsRunningStatisticsAndPredictsTheSameAfterLoading() throws {
        let (_, outcome) = try digitsImages(model: #"{"preset": "mobilenet_v1", "width_multiplier": 0.25, "input_shape": [1, 8, 8]}"#, epochs: 2)
        let data = outcome.model.safetensors()
        let file = try SafeTensorsFile.parse(data)
        #expect(file.tensor(named: "layers.1.running_mean") != nil)
        #expect(file.tensor(named: "layers.3.depthwise.weight") != nil)
        #expect(file.tensor(named: "layers.3.bn2.running_var") != nil)
        let loaded = try TrainedModel.load(data)
        let rows = (0..<5).map { row in (0..<64).map { Double(($0 * 7 + row * 3) % 17) } }
        let before = try outcome.model.predict(rows), after = try loaded.predict(rows)
        #expect(before.outputs == after.outputs)
    }

    @Test func aConvolutionOnFlatFeaturesIsRefusedNamingBothShapes() throws {
        let spec = try JobSpec.parse(json("""
        {"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "conv2d", "filters": 4}, {"type": "flatten"}, {"type": "dense", "units": 10}]}}
        """))
        let summary = DatasetSummary(try digits())
        do {
            _ = try spec.resolved(for: summary)
            Issue.record("accepted")
        } catch {
            let issue = try #require(error.issues.first)
            #expect(issue.path == "model.layers[0]")
            #expect(issue.message.contains("[64]") && issue.message.contains("input_shape"))
        }
    }

    @Test func aShuffleUnitWithStrideOneMustKeepItsChannels() throws {
        let spec = try JobSpec.parse(json("""
        {"dataset": {"id": "ds_digits"}, "model": {"input_shape": [1, 8, 8], "layers": [
          {"type": "conv2d", "filters": 12, "kernel": 3, "padding": "same"}, {"type": "shuffle_unit", "out_channels": 24, "groups": 3},
          {"type": "global_avg_pool2d"}, {"type": "dense", "units": 10}]}}
        """))
        #expect(throws: SpecProblems.self) { try spec.resolved(for: DatasetSummary(digits())) }
    }
}
