import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// Keeps every checkpoint it is handed, and stops the run after `stopAfter` epochs (a crash).
final class CheckpointRecorder: TrainingObserver {
    var checkpoints: [Int: Data] = [:]
    var epochs: [Int] = []
    let stopAfter: Int?
    init(stopAfter: Int? = nil) { self.stopAfter = stopAfter }
    func shouldStop() -> Bool { stopAfter.map { epochs.count >= $0 } ?? false }
    func epochDidFinish(_ metrics: EpochMetrics) { epochs.append(metrics.epoch) }
    func epochDidFinish(_ metrics: EpochMetrics, checkpoint: () -> Data) {
        checkpoints[metrics.epoch] = checkpoint()
        epochs.append(metrics.epoch)
    }
}

@Suite("Checkpoints and resuming")
struct CheckpointTests {
    static func allWeights(_ trainer: Trainer) -> [UInt32] {
        trainer.network.parameters.flatMap { $0.value.array.map(\.bitPattern) }
            + trainer.network.namedBuffers.flatMap { $0.tensor.array.map(\.bitPattern) }
    }

    /// The index of the first value that differs (bit for bit), nil when the arrays are equal.
    static func firstDifference(_ a: [UInt32], _ b: [UInt32]) -> Int? {
        guard a.count == b.count else { return -1 }
        return zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset
    }

    /// Trains `text` on digits straight through, and again stopped after `crashAfter` epochs and
    /// resumed in a fresh trainer from that epoch's checkpoint; both must end bit for bit equal.
    static func expectResumesExactly(_ text: String, crashAfter: Int) throws {
        let (spec, data) = try prepare(try JobSpec.parse(json(text)), on: try digits())
        let straight = try Trainer(spec: spec, data: data)
        let straightRecorder = CheckpointRecorder()
        let straightOutcome = try straight.run(observer: straightRecorder)

        let first = try Trainer(spec: spec, data: data)
        let crashing = CheckpointRecorder(stopAfter: crashAfter)
        #expect(try first.run(observer: crashing).wasStopped)
        let checkpoint = try #require(crashing.checkpoints[crashAfter])
        // The bytes alone carry the state: a new trainer, as a restarted process would build.
        let second = try Trainer(spec: spec, data: data)
        let resumedRecorder = CheckpointRecorder()
        let resumed = try second.run(observer: resumedRecorder, resumingFrom: checkpoint)

        #expect(resumedRecorder.epochs.first == crashAfter + 1 || straightOutcome.stoppedEarly)
        #expect(crashing.epochs + resumedRecorder.epochs == straightRecorder.epochs, "epochs run: no gap, no repeat")
        #expect(resumed.history.map(\.epoch) == straightOutcome.history.map(\.epoch))
        #expect(resumed.history.map(\.trainLoss) == straightOutcome.history.map(\.trainLoss))
        #expect(resumed.bestEpoch == straightOutcome.bestEpoch && resumed.stoppedEarly == straightOutcome.stoppedEarly)
        #expect(firstDifference(allWeights(second), allWeights(straight)) == nil, "final weights differ from the uninterrupted run")
        #expect(resumed.test?.accuracy == straightOutcome.test?.accuracy)
    }

    @Test("Adam with dropout, a cosine schedule and shuffling resumes bit for bit from a mid-run checkpoint")
    func adamWithDropoutResumesExactly() throws {
        try Self.expectResumesExactly("""
            {"dataset": {"id": "ds_digits"}, "validation": {"split": 0.2}, "test": {"split": 0.2},
             "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.3},
                                  {"type": "batch_norm"}, {"type": "dense", "units": 10}]},
             "optimizer": {"type": "adam", "lr": 0.003, "amsgrad": true}, "schedule": {"type": "cosine", "per": "step"},
             "training": {"epochs": 6, "batch_size": 64, "seed": 3}}
            """, crashAfter: 2)
    }

    @Test("SGD with momentum, balanced sampling, augmentation and a plateau schedule resumes bit for bit")
    func sgdWithAugmentationResumesExactly() throws {
        try Self.expectResumesExactly("""
            {"dataset": {"id": "ds_digits"}, "validation": {"split": 0.2}, "preprocessing": {"standardize": false},
             "model": {"input_shape": [1, 8, 8], "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"},
                       {"type": "flatten"}, {"type": "dense", "units": 10}]},
             "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": true},
             "schedule": {"type": "reduce_on_plateau", "patience": 0, "factor": 0.5},
             "augmentation": [{"type": "random_shift", "pixels": 1}, {"type": "mixup", "alpha": 0.2}],
             "training": {"epochs": 5, "batch_size": 32, "seed": 5, "sampling": "balanced"}}
            """, crashAfter: 3)
    }

    @Test("a run that stopped early before the crash stays stopped, with the best epoch's weights")
    func earlyStoppingSurvivesTheCheckpoint() throws {
        let text = """
            {"dataset": {"id": "ds_digits"}, "validation": {"split": 0.3},
             "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 10}]},
             "optimizer": {"type": "adam", "lr": 0.05}, "early_stopping": {"monitor": "val_loss", "patience": 1},
             "training": {"epochs": 30, "batch_size": 16, "seed": 1}}
            """
        let (spec, data) = try prepare(try JobSpec.parse(json(text)), on: try digits())
        let straight = try Trainer(spec: spec, data: data)
        let recorder = CheckpointRecorder()
        let outcome = try straight.run(observer: recorder)
        #expect(outcome.stoppedEarly)
        // A crash between the last checkpoint and saving the model: the resumed run trains nothing more.
        let last = try #require(recorder.checkpoints[outcome.history.count])
        let again = try Trainer(spec: spec, data: data)
        let resumedRecorder = CheckpointRecorder()
        let resumed = try again.run(observer: resumedRecorder, resumingFrom: last)
        #expect(resumedRecorder.epochs.isEmpty)
        #expect(resumed.stoppedEarly && resumed.bestEpoch == outcome.bestEpoch)
        #expect(Self.firstDifference(Self.allWeights(again), Self.allWeights(straight)) == nil)
        // And from an earlier checkpoint it stops at the same epoch.
        try Self.expectResumesExactly(text, crashAfter: 1)
    }

    @Test("a checkpoint of another model, or damaged bytes, is refused with a message")
    func mismatchedCheckpointIsRefused() throws {
        let small = """
            {"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "dense", "units": 10}]}, "training": {"epochs": 2, "seed": 1}}
            """
        let (spec, data) = try prepare(try JobSpec.parse(json(small)), on: try digits())
        let recorder = CheckpointRecorder()
        _ = try Trainer(spec: spec, data: data).run(observer: recorder)
        let checkpoint = try #require(recorder.checkpoints[1])
        let bigger = small.replacingOccurrences(of: #"{"type": "dense", "units": 10}"#,
                                                with: #"{"type": "dense", "units": 8}, {"type": "dense", "units": 10}"#)
        let (otherSpec, otherData) = try prepare(try JobSpec.parse(json(bigger)), on: try digits())
        #expect(throws: (any Error).self) { _ = try Trainer(spec: otherSpec, data: otherData).run(resumingFrom: checkpoint) }
        #expect(throws: (any Error).self) { _ = try Trainer(spec: spec, data: data).run(resumingFrom: checkpoint.prefix(100)) }
    }
}

@Suite("GAN checkpoints")
struct GANCheckpointTests {
    @Test("a GAN resumed from a mid-run checkpoint ends with both networks bit for bit as an uninterrupted run")
    func ganResumesExactly() throws {
        let text = """
            {"task": "gan", "dataset": {"builtin": "gaussian_mixture", "samples": 512, "noise": 0.05},
             "model": {"generator": {"latent_dim": 8, "layers": [{"type": "dense", "units": 32, "activation": "relu"},
                                                                 {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 2}]},
                       "discriminator": {"layers": [{"type": "dense", "units": 32, "activation": "leaky_relu"},
                                                    {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 1}]}},
             "training": {"epochs": 5, "batch_size": 64, "seed": 4}}
            """
        let spec = try JobSpec.parse(json(text))
        guard case .builtin(let kind, let options) = spec.dataset else { Issue.record("a built-in dataset"); return }
        let dataset = kind.generate(options)
        let resolved = try spec.resolved(for: DatasetSummary(dataset))
        func makeTrainer() throws -> GANTrainer { try GANTrainer(spec: resolved, data: PreparedData(spec: resolved, dataset: dataset)) }
        func weights(_ trainer: GANTrainer) -> [UInt32] {
            (trainer.generator.parameters + trainer.discriminator.parameters).flatMap { $0.value.array.map(\.bitPattern) }
        }
        let straight = try makeTrainer()
        let straightOutcome = try straight.run(observer: CheckpointRecorder())
        let crashing = CheckpointRecorder(stopAfter: 2)
        _ = try makeTrainer().run(observer: crashing)
        let resumed = try makeTrainer()
        let recorder = CheckpointRecorder()
        let outcome = try resumed.run(observer: recorder, resumingFrom: try #require(crashing.checkpoints[2]))
        #expect(recorder.epochs == [3, 4, 5])
        #expect(outcome.history.map(\.discriminatorLoss) == straightOutcome.history.map(\.discriminatorLoss))
        #expect(CheckpointTests.firstDifference(weights(resumed), weights(straight)) == nil)
    }
}
