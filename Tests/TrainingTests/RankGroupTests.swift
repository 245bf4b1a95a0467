import Datasets
import Foundation
import NeuralNetwork
import Tensors
import Testing
@testable import Training

/// `distributed.processes`: the trainer's part of a multi-process run (`RankGroup`), checked without MPI:
/// N trainers on N threads of this process, joined by a collective over shared memory that sums in rank order
/// (as Open MPI does for two ranks). The MPI wiring itself is tested through mpirun in ServerTests.
@Suite("Data-parallel training on ranks joined by a collective")
struct RankGroupTests {
    /// Trains `text` on digits as `size` ranks at once; returns every rank's trainer and outcome.
    static func trainAsRanks(_ text: String, size: Int) throws -> [(Trainer, TrainingOutcome)] {
        let dataset = try digits()
        let (spec, data) = try prepare(try JobSpec.parse(json(text)), on: dataset)
        let shared = ThreadCollective.Shared(size: size)
        let trainers = try (0..<size).map { try Trainer(spec: spec, data: data, collective: ThreadCollective(rank: $0, shared: shared)) }
        let results = ResultSlots(count: size)
        let previousThreads = BLAS.threadCount
        BLAS.setThreadCount(1)
        defer { BLAS.setThreadCount(previousThreads) }
        // Rank r's thread touches only trainers[r]; they meet in the collective alone. Threads of their own:
        // every rank must run at once (a pool could run them one after another, and the first would wait forever).
        let box = TrainersBox(trainers: trainers)
        let done = DispatchSemaphore(value: 0)
        for rank in 0..<size {
            let thread = Thread {
                results.set(rank, Result { try box.trainers[rank].run() })
                done.signal()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        for _ in 0..<size { done.wait() }
        return try (0..<size).map { (trainers[$0], try results.get($0)) }
    }

    static func spec(optimizer: String, batchSize: Int = 32, epochs: Int = 1, layers: String? = nil, loss: String = #""cross_entropy""#,
                     extra: String = "") -> String {
        if let layers {
            return DataParallelTrainingTests.digitsSpec(optimizer: optimizer, batchSize: batchSize, replicas: nil, epochs: epochs,
                                                        layers: layers, loss: loss, extra: extra)
        }
        return DataParallelTrainingTests.digitsSpec(optimizer: optimizer, batchSize: batchSize, replicas: nil, epochs: epochs, loss: loss,
                                                    extra: extra)
    }

    /// Trains on one network and on `size` ranks; every rank must end with rank 0's weights, and those
    /// must be the single run's within the replica tests' tolerance, with the same metrics.
    static func expectSameAsSingleRun(_ text: String, size: Int) throws {
        let (single, singleOutcome) = try train(text, on: try digits())
        let ranks = try trainAsRanks(text, size: size)
        let (first, firstOutcome) = ranks[0]
        #expect(first.ranks != nil && first.replicas == nil)
        for (other, outcome) in ranks.dropFirst() {
            #expect(DataParallelTrainingTests.relativeDifference(other, first).norm == 0, "rank \(other.ranks?.rank ?? -1) drifted from rank 0")
            #expect(outcome.history.map(\.trainLoss) == firstOutcome.history.map(\.trainLoss))
            #expect(outcome.history.map(\.validationLoss) == firstOutcome.history.map(\.validationLoss), "ranks > 0 take rank 0's validation")
        }
        let difference = DataParallelTrainingTests.relativeDifference(first, single)
        print("[figures] \(size) ranks vs one network: relative weight difference \(difference.norm) (norm), \(difference.elementwise) (element/max)")
        #expect(difference.norm <= DataParallelTrainingTests.tolerance)
        #expect(difference.elementwise <= DataParallelTrainingTests.tolerance)
        #expect(firstOutcome.history.count == singleOutcome.history.count)
        for (a, b) in zip(firstOutcome.history, singleOutcome.history) {
            #expect(abs(a.trainLoss - b.trainLoss) <= DataParallelTrainingTests.tolerance * abs(b.trainLoss), "epoch \(a.epoch)")
            #expect(a.trainAccuracy == b.trainAccuracy)
            #expect(abs((a.validationLoss ?? .nan) - (b.validationLoss ?? .nan)) <= DataParallelTrainingTests.tolerance * abs(b.validationLoss ?? 1))
        }
    }

    @Test func twoRanksWithSGDMomentumTakeTheSingleRunsStepsForOneEpoch() throws {
        try Self.expectSameAsSingleRun(Self.spec(optimizer: #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#), size: 2)
    }

    @Test func threeRanksWithClassWeightsLabelSmoothingPenaltiesAndAPlateauScheduleMatchOverTwoEpochs() throws {
        try Self.expectSameAsSingleRun(Self.spec(
            optimizer: #"{"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}"#, batchSize: 50, epochs: 2,
            loss: #"{"type": "cross_entropy", "label_smoothing": 0.1, "class_weights": "balanced"}"#,
            extra: #", "regularization": {"l2": 0.0001, "max_norm": 3}, "schedule": {"type": "reduce_on_plateau", "patience": 0}"#),
            size: 3)
    }

    @Test func lbfgsEvaluatesItsFullBatchLossAndGradientAcrossRanks() throws {
        try Self.expectSameAsSingleRun(Self.spec(optimizer: #"{"type": "lbfgs", "lr": 1, "max_iter": 5, "history_size": 5}"#), size: 2)
    }

    @Test func twoRanksWithDropoutAreTwoInProcessReplicasBitForBit() throws {
        // Rank r draws replica r's dropout streams and the same shard: the same arithmetic in the same order.
        let layers = #"{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}"#
        let optimizer = #"{"type": "adam", "lr": 0.003}"#
        let (replicated, _) = try DataParallelTrainingTests.trainDigits(
            DataParallelTrainingTests.digitsSpec(optimizer: optimizer, batchSize: 32, replicas: 2, epochs: 2, layers: layers))
        let ranks = try Self.trainAsRanks(Self.spec(optimizer: optimizer, epochs: 2, layers: layers), size: 2)
        let weights = { (trainer: Trainer) in trainer.network.parameters.flatMap { $0.value.array.map(\.bitPattern) } }
        #expect(weights(ranks[0].0) == weights(replicated))
        #expect(weights(ranks[1].0) == weights(replicated))
    }

    @Test func theComparisonCanFailWhenTheRanksDisagree() throws {
        // Twice the steps (half the batch) on the ranks is far outside the tolerance: the check above is not vacuous.
        let optimizer = #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#
        let (single, _) = try train(Self.spec(optimizer: optimizer), on: try digits())
        let ranks = try Self.trainAsRanks(Self.spec(optimizer: optimizer, batchSize: 16), size: 2)
        #expect(DataParallelTrainingTests.relativeDifference(ranks[0].0, single).norm > 1000 * DataParallelTrainingTests.tolerance)
    }
}

/// A `ProcessCollective` for ranks that are threads of one process: every call is a rendezvous of all ranks.
final class ThreadCollective: ProcessCollective, @unchecked Sendable {
    /// What the ranks share: a barrier and one buffer address per rank (written by its rank before a barrier,
    /// read by the others after it; the barrier's lock orders the accesses).
    final class Shared: @unchecked Sendable {
        let size: Int
        let condition = NSCondition()
        var arrived = 0, generation = 0
        let slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>

        init(size: Int) {
            self.size = size
            slots = .allocate(capacity: size)
            slots.initialize(repeating: nil, count: size)
        }

        deinit { slots.deallocate() }

        func barrier() {
            condition.lock()
            defer { condition.unlock() }
            let current = generation
            arrived += 1
            if arrived == size {
                arrived = 0
                generation += 1
                condition.broadcast()
            } else {
                while current == generation { condition.wait() }
            }
        }
    }

    let rank: Int
    let shared: Shared
    var size: Int { shared.size }

    init(rank: Int, shared: Shared) {
        self.rank = rank
        self.shared = shared
    }

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        shared.slots[rank] = UnsafeMutableRawPointer(buffer.baseAddress)
        shared.barrier()
        // Summed in rank order on every rank: every rank gets the same bits.
        var sum = [Float](repeating: 0, count: buffer.count)
        for source in 0..<size {
            let values = shared.slots[source]!.assumingMemoryBound(to: Float.self)
            for i in 0..<buffer.count { sum[i] += values[i] }
        }
        shared.barrier()
        for i in 0..<buffer.count { buffer[i] = sum[i] }
        shared.barrier()
    }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) { broadcastBytes(UnsafeMutableRawBufferPointer(buffer), from: root) }

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) { broadcastBytes(UnsafeMutableRawBufferPointer(buffer), from: root) }

    private func broadcastBytes(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) {
        shared.slots[rank] = buffer.baseAddress
        shared.barrier()
        if rank != root, let source = shared.slots[root], let target = buffer.baseAddress, source != target {
            target.copyMemory(from: source, byteCount: buffer.count)
        }
        shared.barrier()
    }
}

private struct TrainersBox: @unchecked Sendable {
    let trainers: [Trainer]
}

/// Each rank's result, set by its own thread.
private final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<TrainingOutcome, any Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ result: Result<TrainingOutcome, any Error>) { lock.withLock { results[index] = result } }
    func get(_ index: Int) throws -> TrainingOutcome { try lock.withLock { results[index] }!.get() }
}
