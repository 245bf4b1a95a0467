import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// `distributed: {"replicas": N}`: synchronous data parallelism in one process must take the same
/// steps as one network on the same global batch, up to the order of floating-point sums.
@Suite("Data-parallel training on in-process replicas")
struct DataParallelTrainingTests {
    /// The tolerance held: for every parameter tensor, ‖w_replicas − w_single‖₂ / ‖w_single‖₂.
    static let tolerance = 1e-5

    /// A digits job (an MLP unless `layers` says otherwise), one epoch unless told.
    static func digitsSpec(optimizer: String, batchSize: Int, replicas: Int?, epochs: Int = 1,
                           layers: String = #"{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dense", "units": 10}"#,
                           loss: String = #""cross_entropy""#, inputShape: String? = nil, extra: String = "") -> String {
        """
        {"dataset": {"id": "ds_digits"}, "validation": {"split": 0.2},
         "model": {\(inputShape.map { #""input_shape": \#($0), "# } ?? "")"layers": [\(layers)]}, "loss": \(loss),
         "optimizer": \(optimizer), "training": {"epochs": \(epochs), "batch_size": \(batchSize), "seed": 7}\(
         replicas.map { #", "distributed": {"replicas": \#($0)}"# } ?? "")\(extra)}
        """
    }

    /// Trains `text` on digits.
    static func trainDigits(_ text: String) throws -> (Trainer, TrainingOutcome) {
        try train(text, on: try digits())
    }

    /// The largest relative difference between two trainers' parameter tensors (‖a − b‖₂ / ‖b‖₂),
    /// and the largest element-wise |a − b| / max|b| of a tensor.
    static func relativeDifference(_ a: Trainer, _ b: Trainer) -> (norm: Double, elementwise: Double) {
        var worstNorm = 0.0, worstElement = 0.0
        for (x, y) in zip(a.network.parameters, b.network.parameters) {
            var difference = 0.0, reference = 0.0, largest = 0.0, largestDifference = 0.0
            for (u, v) in zip(x.value.array, y.value.array) {
                let d = Double(u) - Double(v)
                difference += d * d
                reference += Double(v) * Double(v)
                largest = max(largest, abs(Double(v)))
                largestDifference = max(largestDifference, abs(d))
            }
            worstNorm = max(worstNorm, (difference / max(reference, 1e-30)).squareRoot())
            worstElement = max(worstElement, largestDifference / max(largest, 1e-30))
        }
        return (worstNorm, worstElement)
    }

    /// Trains the same digits job on one network and on `replicas`, and checks weights, loss and accuracy agree.
    static func expectSameAsSingleRun(optimizer: String, batchSize: Int, replicas: Int, epochs: Int = 1, loss: String = #""cross_entropy""#,
                                      layers: String? = nil, inputShape: String? = nil, extra: String = "") throws {
        func spec(_ replicas: Int?) -> String {
            if let layers {
                return digitsSpec(optimizer: optimizer, batchSize: batchSize, replicas: replicas, epochs: epochs, layers: layers, loss: loss,
                                  inputShape: inputShape, extra: extra)
            }
            return digitsSpec(optimizer: optimizer, batchSize: batchSize, replicas: replicas, epochs: epochs, loss: loss, extra: extra)
        }
        let (single, singleOutcome) = try trainDigits(spec(nil))
        let (parallel, parallelOutcome) = try trainDigits(spec(replicas))
        #expect(single.replicas == nil)
        #expect(parallel.replicas?.count == replicas)
        let difference = relativeDifference(parallel, single)
        print("data parallel \(replicas) replicas, batch \(batchSize), \(optimizer): relative weight difference \(difference.norm) (norm), \(difference.elementwise) (element/max)")
        #expect(difference.norm <= tolerance, "relative difference \(difference.norm) exceeds \(tolerance)")
        #expect(difference.elementwise <= tolerance, "element-wise difference \(difference.elementwise) exceeds \(tolerance)")
        for (a, b) in zip(parallelOutcome.history, singleOutcome.history) {
            #expect(abs(a.trainLoss - b.trainLoss) <= tolerance * abs(b.trainLoss), "epoch \(a.epoch) train loss \(a.trainLoss) vs \(b.trainLoss)")
            #expect(a.trainAccuracy == b.trainAccuracy, "epoch \(a.epoch) train accuracy")
            #expect(abs((a.validationLoss ?? .nan) - (b.validationLoss ?? .nan)) <= tolerance * abs(b.validationLoss ?? 1))
        }
        #expect(parallelOutcome.history.count == singleOutcome.history.count)
    }

    // MARK: Equivalence with one network

    @Test func twoReplicasWithSGDMomentumTakeTheSingleRunsStepsForOneEpoch() throws {
        // 1437 training rows in batches of 32: 44 batches split 16 + 16, the last of 29 rows split 15 + 14.
        try Self.expectSameAsSingleRun(optimizer: #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#, batchSize: 32, replicas: 2)
    }

    @Test func twoReplicasWithAdamTakeTheSingleRunsStepsForOneEpoch() throws {
        try Self.expectSameAsSingleRun(optimizer: #"{"type": "adam", "lr": 0.003}"#, batchSize: 32, replicas: 2)
    }

    @Test func anOddBatchSizeSplitsIntoUnequalShardsAndStillMatches() throws {
        // Batches of 33 split 17 + 16; the last batch has 1437 mod 33 = 18 rows (9 + 9).
        try Self.expectSameAsSingleRun(optimizer: #"{"type": "adam", "lr": 0.003}"#, batchSize: 33, replicas: 2)
    }

    @Test func threeReplicasWithClassWeightsLabelSmoothingClippingAndPenaltiesMatchOverTwoEpochs() throws {
        // Class-weighted cross-entropy normalizes by the batch's Σw, not by its row count: the loss is
        // taken over the gathered outputs, so the shards' gradients still add up to the batch's.
        try Self.expectSameAsSingleRun(
            optimizer: #"{"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}"#, batchSize: 50, replicas: 3, epochs: 2,
            loss: #"{"type": "cross_entropy", "label_smoothing": 0.1, "class_weights": "balanced"}"#,
            extra: #", "regularization": {"l2": 0.0001, "max_norm": 3}, "schedule": {"type": "cosine", "t_max": 2}"#)
    }

    @Test func aSmallCNNOnTheDigitsAsImagesMatchesToo() throws {
        // Convolution weight gradients accumulate over the shard's im2col columns: the sum over shards is the batch's.
        let layers = #"{"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}, {"type": "max_pool2d", "kernel": 2}, {"type": "flatten"}, {"type": "dense", "units": 10}"#
        try Self.expectSameAsSingleRun(optimizer: #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#, batchSize: 32, replicas: 2,
                                       layers: layers, inputShape: "[1, 8, 8]")
    }

    @Test func lbfgsEvaluatesItsFullBatchLossAndGradientAcrossReplicas() throws {
        try Self.expectSameAsSingleRun(optimizer: #"{"type": "lbfgs", "lr": 1, "max_iter": 5, "history_size": 5}"#, batchSize: 32, replicas: 2)
    }

    @Test func oneReplicaIsTheSingleRunBitForBit() throws {
        let optimizer = #"{"type": "adam", "lr": 0.003}"#
        let (single, _) = try Self.trainDigits(Self.digitsSpec(optimizer: optimizer, batchSize: 32, replicas: nil))
        let (one, _) = try Self.trainDigits(Self.digitsSpec(optimizer: optimizer, batchSize: 32, replicas: 1))
        #expect(one.replicas == nil)
        #expect(CheckpointTests.firstDifference(CheckpointTests.allWeights(one), CheckpointTests.allWeights(single)) == nil)
    }

    @Test func theToleranceIsTightEnoughToTellDifferentRunsApart() throws {
        // The check above can fail: half the batch size (twice the steps) is far outside the tolerance.
        let optimizer = #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#
        let (single, _) = try Self.trainDigits(Self.digitsSpec(optimizer: optimizer, batchSize: 32, replicas: nil))
        let (halved, _) = try Self.trainDigits(Self.digitsSpec(optimizer: optimizer, batchSize: 16, replicas: 2))
        #expect(Self.relativeDifference(halved, single).norm > 1000 * Self.tolerance)
    }

    // MARK: Sharding

    @Test func shardsAreContiguousAndDifferInSizeByAtMostOne() {
        #expect(ReplicaGroup.shards(rows: 33, replicas: 2, needsTwoRows: false) == [0..<17, 17..<33])
        #expect(ReplicaGroup.shards(rows: 10, replicas: 3, needsTwoRows: false) == [0..<4, 4..<7, 7..<10])
        #expect(ReplicaGroup.shards(rows: 2, replicas: 4, needsTwoRows: false) == [0..<1, 1..<2, 2..<2, 2..<2])
        // Batch norm needs two rows per shard: a last batch of 3 rows runs on one replica.
        #expect(ReplicaGroup.shards(rows: 3, replicas: 2, needsTwoRows: true) == [0..<3, 3..<3])
        #expect(ReplicaGroup.shards(rows: 5, replicas: 2, needsTwoRows: true) == [0..<3, 3..<5])
    }

    // MARK: Batch norm, dropout, checkpoints

    @Test func batchNormNormalizesEachReplicasShardWithItsOwnStatistics() throws {
        // Per-replica batch statistics are a different computation from the global batch's: the
        // weights part from the single run's, yet the model learns, and its running statistics are replica 0's.
        let layers = #"{"type": "dense", "units": 32}, {"type": "batch_norm"}, {"type": "activation", "name": "relu"}, {"type": "dense", "units": 10}"#
        let optimizer = #"{"type": "adam", "lr": 0.003}"#
        let (single, _) = try Self.trainDigits(Self.digitsSpec(optimizer: optimizer, batchSize: 32, replicas: nil, epochs: 3, layers: layers))
        let (parallel, outcome) = try Self.trainDigits(Self.digitsSpec(optimizer: optimizer, batchSize: 32, replicas: 2, epochs: 3, layers: layers))
        #expect(Self.relativeDifference(parallel, single).norm > Self.tolerance)
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.9)
        let replicas = try #require(parallel.replicas)
        let modelStatistics = parallel.network.namedBuffers.map(\.tensor.array)
        #expect(!modelStatistics.isEmpty)
        #expect(modelStatistics == replicas.networks[0].namedBuffers.map(\.tensor.array))
        #expect(modelStatistics != replicas.networks[1].namedBuffers.map(\.tensor.array), "replica 1 keeps statistics of its own shards")
    }

    @Test func dropoutInEachReplicaDrawsFromItsOwnStreamAndRunsAreReproducible() throws {
        let layers = #"{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}"#
        let text = Self.digitsSpec(optimizer: #"{"type": "adam", "lr": 0.003}"#, batchSize: 32, replicas: 2, epochs: 2, layers: layers)
        let (first, outcome) = try Self.trainDigits(text)
        let (second, _) = try Self.trainDigits(text)
        #expect(CheckpointTests.firstDifference(CheckpointTests.allWeights(first), CheckpointTests.allWeights(second)) == nil)
        let replicas = try #require(first.replicas)
        #expect(replicas.networks[0].stochasticLayers[0].generator != replicas.networks[1].stochasticLayers[0].generator)
        // Other masks than the single run's, so other weights, but a model as good.
        let (_, single) = try Self.trainDigits(text.replacingOccurrences(of: #", "distributed": {"replicas": 2}"#, with: ""))
        let accuracy = try #require(outcome.history.last?.validationAccuracy)
        let singleAccuracy = try #require(single.history.last?.validationAccuracy)
        #expect(abs(accuracy - singleAccuracy) <= 0.03, "validation accuracy \(accuracy) with replicas, \(singleAccuracy) without")
        #expect(accuracy >= 0.8)
    }

    @Test func aReplicatedRunWithDropoutResumesBitForBitFromACheckpoint() throws {
        let layers = #"{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}"#
        try CheckpointTests.expectResumesExactly(
            Self.digitsSpec(optimizer: #"{"type": "adam", "lr": 0.003}"#, batchSize: 32, replicas: 2, epochs: 3, layers: layers), crashAfter: 1)
    }

    // MARK: The spec

    @Test func theSpecEchoesItsReplicasAndParsesBackToThem() throws {
        let spec = try JobSpec.parse(json(Self.digitsSpec(optimizer: #"{"type": "sgd", "lr": 0.1}"#, batchSize: 32, replicas: 4)))
        #expect(spec.distributed == DistributedSpec(replicas: 4))
        #expect(spec.jsonValue["distributed"] == ["replicas": 4, "mode": "sync"])
        #expect(try JobSpec.parse(spec.jsonValue).distributed == DistributedSpec(replicas: 4))
        let none = try JobSpec.parse(json(Self.digitsSpec(optimizer: #"{"type": "sgd", "lr": 0.1}"#, batchSize: 32, replicas: nil)))
        #expect(none.distributed == nil && none.jsonValue["distributed"] == .null)
    }

    @Test func theSpecEchoesItsProcessesAndHostsAndParsesBackToThem() throws {
        let text = Self.digitsSpec(optimizer: #"{"type": "sgd", "lr": 0.1}"#, batchSize: 32, replicas: nil,
                                   extra: #", "distributed": {"processes": 3, "hosts": ["node1:2", "10.0.0.7"]}"#)
        let spec = try JobSpec.parse(json(text))
        let expected = DistributedSpec(processes: 3, hosts: [.init(name: "node1", slots: 2), .init(name: "10.0.0.7", slots: 1)])
        #expect(spec.distributed == expected)
        #expect(spec.distributed?.replicas == 1)
        #expect(spec.jsonValue["distributed"] == ["processes": 3, "hosts": ["node1:2", "10.0.0.7:1"], "mode": "sync"])
        #expect(try JobSpec.parse(spec.jsonValue).distributed == expected)
        let local = try JobSpec.parse(json(Self.digitsSpec(optimizer: #"{"type": "sgd", "lr": 0.1}"#, batchSize: 32, replicas: nil,
                                                           extra: #", "distributed": {"processes": 2}"#)))
        #expect(local.distributed == DistributedSpec(processes: 2) && local.jsonValue["distributed"]?["hosts"] == [])
    }

    static let rejected: [(distributed: String, path: String, message: String)] = [
        (#"{"processes": 0}"#, "distributed.processes", "between 1 and 256"),
        (#"{"processes": 40}"#, "distributed.processes", "must be ≤ training.batch_size (32)"),
        (#"{"processes": 2, "replicas": 2}"#, "distributed.replicas", "cannot be combined with processes"),
        (#"{"replicas": 2, "hosts": ["a", "b"]}"#, "distributed.hosts", "applies to processes"),
        (#"{"hosts": ["a:2"]}"#, "distributed.processes", "is required with hosts"),
        (#"{"processes": 4, "hosts": ["a:1", "b:2"]}"#, "distributed.hosts", "offer 3 slots for 4 processes"),
        (#"{"processes": 2, "hosts": [""]}"#, "distributed.hosts[0]", "with a host name or address"),
        (#"{"processes": 2, "hosts": ["a", "-x:2"]}"#, "distributed.hosts[1]", "with a host name or address"),
        (#"{"processes": 2, "hosts": ["a,b:2"]}"#, "distributed.hosts[0]", "with a host name or address"),
        (#"{"processes": 2, "hosts": ["a:0"]}"#, "distributed.hosts[0]", "slots must be an integer between 1 and 256"),
        (#"{"processes": 2, "hosts": [3]}"#, "distributed.hosts[0]", "must be a string"),
        (#"{"processes": 2, "hosts": "a:2"}"#, "distributed.hosts", "must be an array"),
        (#"{"replicas": 0}"#, "distributed.replicas", "between 1 and 64"),
        (#"{"replicas": 65}"#, "distributed.replicas", "between 1 and 64"),
        (#"{"replicas": 2.5}"#, "distributed.replicas", "must be an integer"),
        (#"{"replicas": 40}"#, "distributed.replicas", "must be ≤ training.batch_size (32)"),
        (#"{"replicas": 2, "mode": "async"}"#, "distributed.mode", "must be \"sync\""),
        (#"{}"#, "distributed.replicas", "is required"),
        (#"{"replicas": 2, "gpus": 2}"#, "distributed.gpus", "unknown key"),
        (#"4"#, "distributed", "must be an object"),
    ]

    @Test(arguments: rejected.indices)
    func aDistributedSectionThatCannotRunIsRefusedAtItsPath(case index: Int) {
        let (distributed, path, message) = Self.rejected[index]
        let text = Self.digitsSpec(optimizer: #"{"type": "sgd", "lr": 0.1}"#, batchSize: 32, replicas: nil, extra: #", "distributed": \#(distributed)"#)
        let issues = problems(text)
        #expect(issues.map(\.path) == [path], "\(distributed) → \(issues)")
        #expect(issues.first?.message.contains(message) == true, "\(issues.first?.message ?? "nothing") lacks \"\(message)\"")
    }

    @Test func aFullBatchMethodMayHaveMoreReplicasThanTheBatchSize() throws {
        // L-BFGS steps on the whole training set: training.batch_size does not bound its replicas.
        let spec = try JobSpec.parse(json(Self.digitsSpec(optimizer: #"{"type": "lbfgs", "lr": 1}"#, batchSize: 4, replicas: 8)))
        #expect(spec.distributed?.replicas == 8)
    }

    @Test func aGANJobRefusesReplicas() {
        let text = """
            {"task": "gan", "dataset": {"id": "ds_x"}, "model": {"generator": {"layers": [{"type": "dense", "units": 2}]},
             "discriminator": {"layers": [{"type": "dense", "units": 1}]}}, "distributed": {"replicas": 2}}
            """
        #expect(problems(text).map(\.path) == ["distributed"])
    }
}
