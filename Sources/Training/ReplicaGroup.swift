import Dispatch
import Foundation
import NeuralNetwork
import Tensors

/// Synchronous data parallelism on `replicas` copies of a network in this process (`distributed.replicas`).
///
/// One training step, for a global batch of B rows split into contiguous shards (sizes differ by at most one):
/// 1. broadcast: replica 0's parameters (the trainer's network) are copied into the others;
/// 2. each replica runs forward on its shard, on its own thread;
/// 3. gather: the shards' outputs are copied into one (B, outputs) tensor, on which the trainer computes
///    the loss and dL/d(output) exactly as for one network — so every normalization (the mean over B,
///    class weights' Σw, label smoothing, mixup, distillation) is the global batch's;
/// 4. each replica backpropagates its rows of dL/d(output) on its own thread;
/// 5. allreduce: the replicas' parameter gradients are summed into replica 0's. Since each row of
///    dL/d(output) already carries the global batch's normalization, the sum is the full-batch gradient
///    (up to the order of floating-point sums), and the trainer's one optimizer step on replica 0 is the
///    step every replica would take.
///
/// Batch norm normalizes each shard with that shard's statistics, and replica 0's running statistics are
/// the model's. Dropout in replica r > 0 draws from streams of its own (`dropout.replica<r>.<i>`).
///
/// Replica 0 runs on the calling thread, the others on threads the group keeps for its life: a step
/// hands them work through semaphores and allocates nothing. Unchecked Sendable: between its start
/// signal and its finished signal a replica's thread touches only replica r's network and tensors and
/// its own rows of the shared buffers, and the semaphores order those accesses with the caller's.
final class ReplicaGroup: @unchecked Sendable {
    /// Replica 0 is the trainer's network; the others are built from its spec.
    let networks: [Network]
    /// Whether a shard must hold at least two rows (batch norm needs batch statistics).
    private let needsTwoRows: Bool
    private let inputs: [Tensor]
    private let outputGradients: [Tensor]
    /// The global batch's outputs, gathered from the shards.
    let output: Tensor
    /// The shards of the current batch: `shards[r]` are the batch rows of replica r (empty when idle).
    private(set) var shards: [Range<Int>]
    private let parameterLists: [[Parameter]]

    init(network: Network, replicas: Int, batchSize: Int, seed: UInt64) {
        precondition(replicas >= 1)
        var networks = [network]
        for replica in 1..<max(replicas, 1) {
            let copy = Network(spec: network.spec, seed: seed)
            for (index, layer) in copy.stochasticLayers.enumerated() {
                let layer = layer
                layer.generator = SeededGenerator(seed: seed, purpose: "dropout.replica\(replica).\(index)")
            }
            networks.append(copy)
        }
        self.networks = networks
        needsTwoRows = network.spec.usesBatchStatistics
        let shardCapacity = (batchSize + replicas - 1) / replicas
        inputs = networks.map { Tensor(shape: [shardCapacity] + $0.inputShape) }
        outputGradients = networks.map { Tensor(shape: [shardCapacity] + $0.outputShape) }
        output = Tensor(shape: [batchSize] + network.outputShape)
        shards = Array(repeating: 0..<0, count: replicas)
        parameterLists = networks.map(\.parameters)
        starts = (1..<networks.count).map { _ in DispatchSemaphore(value: 0) }
        for replica in 1..<networks.count { Self.startThread(of: self, replica: replica) }
    }

    var count: Int { networks.count }

    /// Splits `rows` into contiguous shards over as many replicas as have a row each (two with batch norm).
    static func shards(rows: Int, replicas: Int, needsTwoRows: Bool) -> [Range<Int>] {
        var shards = Array(repeating: 0..<0, count: replicas)
        split(rows: rows, needsTwoRows: needsTwoRows, into: &shards)
        return shards
    }

    /// `shards(rows:replicas:needsTwoRows:)` written into an existing array (one per replica), so a step allocates nothing.
    static func split(rows: Int, needsTwoRows: Bool, into shards: inout [Range<Int>]) {
        let replicas = shards.count
        let active = max(1, min(replicas, needsTwoRows ? rows / 2 : rows))
        var start = 0
        for replica in 0..<replicas {
            let size = replica < active ? rows / active + (replica < rows % active ? 1 : 0) : 0
            shards[replica] = start..<(start + size)
            start += size
        }
    }

    /// Copies replica 0's parameters into the others.
    func broadcastParameters() {
        // Through the parameter lists kept at init: `Network.parameters` builds a new array on each read.
        for replica in 1..<networks.count {
            for (mine, theirs) in zip(parameterLists[replica], parameterLists[0]) { mine.value.copy(from: theirs.value) }
        }
    }

    /// Broadcasts the parameters, then runs every replica on its shard of `batch` (B rows) and
    /// returns the gathered (B, outputs) output.
    func forward(_ batch: Tensor, isTraining: Bool) -> Tensor {
        broadcastParameters()
        Self.split(rows: batch.rows, needsTwoRows: needsTwoRows && isTraining, into: &shards)
        output.setBatchSize(batch.rows)
        step = .forward(batch: batch, isTraining: isTraining)
        runReplicas()
        return output
    }

    /// Replica r's forward pass on its shard, its output copied into its rows of `output`.
    private func forwardShard(_ replica: Int, batch: Tensor, isTraining: Bool) {
        let shard = shards[replica]
        guard !shard.isEmpty else { return }
        let rowSize = batch.rowSize, outputRowSize = output.rowSize
        let input = inputs[replica]
        input.setBatchSize(shard.count)
        input.pointer.update(from: batch.pointer + shard.lowerBound * rowSize, count: shard.count * rowSize)
        let result = networks[replica].forward(input, isTraining: isTraining)
        (output.pointer + shard.lowerBound * outputRowSize).update(from: result.pointer, count: shard.count * outputRowSize)
    }

    /// Backpropagates each replica's rows of `outputGradient` (B rows, the gathered output's
    /// gradient), then sums the other replicas' parameter gradients into replica 0's. Replica 0's
    /// gradients accumulate, as a network's do; the others' are zeroed first.
    func backward(_ outputGradient: Tensor) {
        step = .backward(outputGradient: outputGradient)
        runReplicas()
        // Allreduce: replica 0's gradient += every other active replica's, parameter by parameter.
        for replica in 1..<networks.count where !shards[replica].isEmpty {
            for (total, part) in zip(parameterLists[0], parameterLists[replica]) {
                BLAS.axpy(count: total.count, alpha: 1, x: part.gradient.pointer, y: total.gradient.pointer)
            }
        }
    }

    /// Replica r's backward pass on its rows of the gathered output's gradient.
    private func backwardShard(_ replica: Int, outputGradient: Tensor) {
        let shard = shards[replica]
        guard !shard.isEmpty else { return }
        if replica > 0 { networks[replica].zeroGradients() }
        let rowSize = outputGradient.rowSize
        let gradient = outputGradients[replica]
        gradient.setBatchSize(shard.count)
        gradient.pointer.update(from: outputGradient.pointer + shard.lowerBound * rowSize, count: shard.count * rowSize)
        networks[replica].backward(gradient)
    }

    // MARK: Threads

    /// What the replicas are doing in the current `runReplicas` call.
    private enum Step {
        case idle
        case forward(batch: Tensor, isTraining: Bool)
        case backward(outputGradient: Tensor)
    }

    private var step = Step.idle
    /// Replica r > 0 waits on `starts[r − 1]`, runs `step`, then signals `finished`.
    private let starts: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)
    private var isStopping = false

    /// Starts replicas 1…N−1 on their threads, runs replica 0 here and waits for the others, with
    /// OpenBLAS single-threaded meanwhile (N replicas × OpenBLAS's threads would oversubscribe the cores).
    /// Replica r touches only its own network and tensors and its rows of the shared buffers.
    private func runReplicas() {
        let previousThreads = BLAS.threadCount
        if previousThreads != 1 { BLAS.setThreadCount(1) }
        defer { if previousThreads != 1 { BLAS.setThreadCount(previousThreads) } }
        for start in starts { start.signal() }
        runStep(replica: 0)
        for _ in starts { finished.wait() }
        step = .idle
    }

    private func runStep(replica: Int) {
        switch step {
        case .idle: break
        case let .forward(batch, isTraining): forwardShard(replica, batch: batch, isTraining: isTraining)
        case let .backward(outputGradient): backwardShard(replica, outputGradient: outputGradient)
        }
    }

    /// The loop of replica r's thread. It holds the group unowned(unsafe), not strongly (which would keep the
    /// group alive forever) nor unowned (which traps when read during deinit): `deinit` waits for every
    /// thread to leave its loop, so the reference never outlives the group.
    private static func startThread(of group: ReplicaGroup, replica: Int) {
        let thread = Thread { [unowned(unsafe) group] in
            let start = group.starts[replica - 1]
            while true {
                start.wait()
                if group.isStopping { break }
                group.runStep(replica: replica)
                group.finished.signal()
            }
            group.finished.signal()
        }
        thread.name = "replica \(replica)"
        thread.start()
    }

    deinit {
        isStopping = true
        for start in starts { start.signal() }
        // Each thread signals once more as it leaves, so none touches the group after this returns.
        for _ in starts { finished.wait() }
    }

    /// The dropout generators of replicas 1…N−1 (for a checkpoint), replica by replica.
    var replicaDropoutGenerators: [[SeededGenerator]] {
        networks.dropFirst().map { $0.stochasticLayers.map(\.generator) }
    }

    func restoreReplicaDropoutGenerators(_ generators: [[SeededGenerator]]) throws {
        guard generators.count == networks.count - 1 else {
            throw TrainingCheckpoint.LoadError.invalid("the checkpoint has the dropout generators of \(generators.count + 1) replicas; this run has \(networks.count)")
        }
        for (network, streams) in zip(networks.dropFirst(), generators) { try network.restoreGenerators(streams) }
    }
}
