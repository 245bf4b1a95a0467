import Dispatch
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
final class ReplicaGroup {
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
    }

    var count: Int { networks.count }

    /// Splits `rows` into contiguous shards over as many replicas as have a row each (two with batch norm).
    static func shards(rows: Int, replicas: Int, needsTwoRows: Bool) -> [Range<Int>] {
        let active = max(1, min(replicas, needsTwoRows ? rows / 2 : rows))
        var shards: [Range<Int>] = []
        var start = 0
        for replica in 0..<replicas {
            let size = replica < active ? rows / active + (replica < rows % active ? 1 : 0) : 0
            shards.append(start..<(start + size))
            start += size
        }
        return shards
    }

    /// Copies replica 0's parameters into the others.
    func broadcastParameters() {
        for replica in 1..<networks.count { networks[replica].copyParameters(from: networks[0]) }
    }

    /// Broadcasts the parameters, then runs every replica on its shard of `batch` (B rows) and
    /// returns the gathered (B, outputs) output.
    func forward(_ batch: Tensor, isTraining: Bool) -> Tensor {
        broadcastParameters()
        let rows = batch.rows, rowSize = batch.rowSize
        shards = Self.shards(rows: rows, replicas: networks.count, needsTwoRows: needsTwoRows && isTraining)
        output.setBatchSize(rows)
        let outputRowSize = output.rowSize
        let source = batch.pointer, gathered = output.pointer
        let (networks, inputs, shards) = (self.networks, self.inputs, self.shards)
        runConcurrently { replica in
            let shard = shards[replica]
            guard !shard.isEmpty else { return }
            let input = inputs[replica]
            input.setBatchSize(shard.count)
            input.pointer.update(from: source + shard.lowerBound * rowSize, count: shard.count * rowSize)
            let result = networks[replica].forward(input, isTraining: isTraining)
            (gathered + shard.lowerBound * outputRowSize).update(from: result.pointer, count: shard.count * outputRowSize)
        }
        return output
    }

    /// Backpropagates each replica's rows of `outputGradient` (B rows, the gathered output's
    /// gradient), then sums the other replicas' parameter gradients into replica 0's. Replica 0's
    /// gradients accumulate, as a network's do; the others' are zeroed first.
    func backward(_ outputGradient: Tensor) {
        let rowSize = outputGradient.rowSize
        let source = outputGradient.pointer
        let (networks, gradients, shards) = (self.networks, self.outputGradients, self.shards)
        runConcurrently { replica in
            let shard = shards[replica]
            guard !shard.isEmpty else { return }
            if replica > 0 { networks[replica].zeroGradients() }
            let gradient = gradients[replica]
            gradient.reshape([shard.count] + networks[replica].outputShape)
            gradient.pointer.update(from: source + shard.lowerBound * rowSize, count: shard.count * rowSize)
            networks[replica].backward(gradient)
        }
        // Allreduce: replica 0's gradient += every other active replica's, parameter by parameter.
        for replica in 1..<networks.count where !shards[replica].isEmpty {
            for (total, part) in zip(parameterLists[0], parameterLists[replica]) {
                BLAS.axpy(count: total.count, alpha: 1, x: part.gradient.pointer, y: total.gradient.pointer)
            }
        }
    }

    /// Runs `work` for every replica, each on a thread of its own, with OpenBLAS single-threaded
    /// meanwhile (N replicas × OpenBLAS's threads would oversubscribe the cores).
    private func runConcurrently(_ work: (Int) -> Void) {
        let previousThreads = BLAS.threadCount
        if previousThreads != 1 { BLAS.setThreadCount(1) }
        defer { if previousThreads != 1 { BLAS.setThreadCount(previousThreads) } }
        // Replica r touches only its own network, tensors and rows r of shared buffers: no data is shared
        // between the threads, which is what the unchecked box asserts.
        withoutActuallyEscaping(work) { work in
            let box = UncheckedSendableBox(value: work)
            DispatchQueue.concurrentPerform(iterations: networks.count) { box.value($0) }
        }
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

/// A value handed to other threads on the caller's word that they never touch the same state.
private struct UncheckedSendableBox<Value>: @unchecked Sendable {
    let value: Value
}
