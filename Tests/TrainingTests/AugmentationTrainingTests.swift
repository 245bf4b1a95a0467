import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// Augmentation as the trainer applies it: to training batches only, seeded, with an effect.
@Suite("Training with augmentation")
struct AugmentationTrainingTests {
    /// 20 % of digits for training, as 1×8×8 images; the rest is the test set.
    private func digitsFifth() throws -> (train: TabularDataset, test: TabularDataset) {
        let all = try digits()
        let trainRows = (0..<all.rows).filter { $0 % 5 == 0 }, testRows = (0..<all.rows).filter { $0 % 5 != 0 }
        return (all.subset(trainRows), all.subset(testRows))
    }

    private func testAccuracy(augmentation: String, seed: Int, data: (train: TabularDataset, test: TabularDataset)) throws -> Double {
        // Pixels keep their 0–16 scale: per-pixel standardization would give a shifted pixel its
        // old position's scale, and augmentation would then show the model images no test has.
        let text = """
        {"dataset": {"id": "ds_digits"}, "validation": {"split": 0}, "preprocessing": {"standardize": false},
         "model": {"input_shape": [1, 8, 8], "layers": [
           {"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}, {"type": "max_pool2d"},
           {"type": "conv2d", "filters": 64, "kernel": 3, "padding": "same", "activation": "relu"}, {"type": "max_pool2d"},
           {"type": "flatten"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 64, "activation": "relu"},
           {"type": "dense", "units": 10}]},
         "augmentation": \(augmentation), "schedule": {"type": "cosine"},
         "optimizer": {"type": "adam", "lr": 0.002}, "training": {"epochs": 100, "batch_size": 32, "seed": \(seed)}}
        """
        let (spec, _) = try prepare(try JobSpec.parse(json(text)), on: data.train)
        let prepared = PreparedData(spec: spec, dataset: data.train, testDataset: data.test)
        return try #require(try Trainer(spec: spec, data: prepared).run().test?.accuracy)
    }

    @Test func shiftAndRotationImproveASmallCNNTrainedOnAFifthOfDigits() throws {
        let data = try digitsFifth()
        let augmented = #"[{"type": "random_shift", "pixels": 1}, {"type": "random_rotation", "degrees": 10}]"#
        var plain: [Double] = [], withAugmentation: [Double] = []
        for seed in 1...3 {
            plain.append(try testAccuracy(augmentation: "[]", seed: seed, data: data))
            withAugmentation.append(try testAccuracy(augmentation: augmented, seed: seed, data: data))
        }
        let meanPlain = plain.reduce(0, +) / 3, meanAugmented = withAugmentation.reduce(0, +) / 3
        print("[figures] small CNN on 20 % of digits, test accuracy over 3 seeds: without augmentation \(plain) mean \(meanPlain); with shift+rotation \(withAugmentation) mean \(meanAugmented)")
        #expect(meanAugmented > meanPlain)
    }

    @Test func mixupTrainsAndTheSameSeedRepeatsExactly() throws {
        let text = moonsSpec(#", "augmentation": [{"type": "mixup", "alpha": 0.2}, {"type": "gaussian_noise", "std": 0.05}]"#, epochs: 10)
        let (_, first) = try trainBuiltin(text)
        let (_, second) = try trainBuiltin(text)
        #expect(first.history.map(\.trainLoss) == second.history.map(\.trainLoss))
        #expect(try #require(first.history.last?.validationAccuracy) >= 0.9)
    }

    @Test func anImageAugmentationOnFlatFeaturesIsRefusedNamingTheShape() throws {
        let spec = try JobSpec.parse(json("""
        {"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "dense", "units": 10}]}, "augmentation": [{"type": "random_flip"}]}
        """))
        let summary = DatasetSummary(try digits())
        do {
            _ = try spec.resolved(for: summary)
            Issue.record("accepted")
        } catch {
            #expect(error.issues.first?.path.hasPrefix("augmentation[0]") == true)
            #expect(error.issues.first?.message.contains("[64]") == true, "\(error.issues)")
        }
    }
}
