import NeuralNetwork
import Tensors

/// The collective operations of the processes that train one job together (`distributed.processes`:
/// MPI ranks). Training never imports MPI: `descent worker` hands the trainer an implementation
/// (MPICollective), and tests can hand it another.
///
/// Every rank must make the same calls in the same order; each call returns when all ranks made it.
public protocol ProcessCollective: AnyObject {
    /// This process's index, 0 ..< size; rank 0 records the job.
    var rank: Int { get }
    var size: Int { get }
    /// In place: every element becomes the sum of that element over the ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// In place: every rank's buffer becomes `root`'s.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int)
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int)
}

/// What the trainer asks of data-parallel replicas, in this process (`ReplicaGroup`) or in several (`RankGroup`):
/// the global batch's output, computed shard by shard, and the global batch's parameter gradients.
protocol DataParallelGroup: AnyObject {
    /// The (B, outputs) output of the network on `batch` (B rows), with up-to-date parameters.
    func forward(_ batch: Tensor, isTraining: Bool) -> Tensor
    /// Backpropagates `outputGradient` (the gathered output's, B rows, with the global batch's
    /// normalization): afterwards the network's parameter gradients are the whole batch's.
    func backward(_ outputGradient: Tensor)
}

extension ReplicaGroup: DataParallelGroup {}

/// Synchronous data parallelism across processes: this rank's part of every step (`distributed.processes`).
///
/// Every rank loads the same global batch (same data, same seed, same shuffle), then:
/// 1. forward on its contiguous shard (`ReplicaGroup.shards`, so the split is the in-process one);
/// 2. gather: each rank writes its rows of the (B, outputs) output into a zeroed buffer and one
///    allreduce-sum assembles it on every rank, so every rank computes the loss and dL/d(output) on the
///    whole batch exactly as one network would: every normalization (mean over B, class weights' Σw,
///    label smoothing, mixup, distillation) is the global batch's, and the loss every rank sees is the same;
/// 3. backward on its rows of dL/d(output), into zeroed gradients;
/// 4. one allreduce-sum of all parameter gradients, packed in one flat buffer: the sum of the shards'
///    gradients is the full-batch gradient, identical on every rank, so every rank's optimizer takes the
///    same step and the replicas stay equal without sending parameters.
///
/// Parameters are broadcast from rank 0 when a run starts and at every epoch, which also undoes any
/// drift an implementation's reduction order could cause. Batch norm normalizes with each shard's
/// statistics; rank 0's running statistics are the model's. Dropout in rank r > 0 draws from the
/// streams replica r would use in one process (`dropout.replica<r>.<i>`).
final class RankGroup: DataParallelGroup {
    let collective: any ProcessCollective
    let network: Network
    private let parameters: [Parameter]
    private let needsTwoRows: Bool
    private let input: Tensor
    private let outputGradient: Tensor
    private let output: Tensor
    /// All parameter values or gradients, back to back (one collective call per step).
    private var flat: [Float]
    /// This rank's rows of the current batch.
    private(set) var shard: Range<Int> = 0..<0

    init(network: Network, collective: any ProcessCollective, batchSize: Int, seed: UInt64) {
        self.collective = collective
        self.network = network
        parameters = network.parameters
        needsTwoRows = network.spec.usesBatchStatistics
        let shardCapacity = (batchSize + collective.size - 1) / collective.size
        input = Tensor(shape: [shardCapacity] + network.inputShape)
        outputGradient = Tensor(shape: [shardCapacity] + network.outputShape)
        output = Tensor(shape: [batchSize] + network.outputShape)
        flat = [Float](repeating: 0, count: parameters.reduce(0) { $0 + $1.count })
        if collective.rank > 0 { useReplicaDropoutStreams(seed: seed) }
    }

    var rank: Int { collective.rank }
    var isRecorder: Bool { collective.rank == 0 }

    /// Rank r's dropout draws replica r's streams, so a run on N ranks is the run on N in-process replicas.
    func useReplicaDropoutStreams(seed: UInt64) {
        for (index, layer) in network.stochasticLayers.enumerated() {
            let layer = layer
            layer.generator = SeededGenerator(seed: seed, purpose: "dropout.replica\(collective.rank).\(index)")
        }
    }

    /// Every rank's parameters become rank 0's.
    func broadcastParameters() {
        pack(\.value)
        flat.withUnsafeMutableBufferPointer { collective.broadcast($0, from: 0) }
        unpack(into: \.value)
    }

    func forward(_ batch: Tensor, isTraining: Bool) -> Tensor {
        let rows = batch.rows, rowSize = batch.rowSize
        shard = ReplicaGroup.shards(rows: rows, replicas: collective.size, needsTwoRows: needsTwoRows && isTraining)[collective.rank]
        output.setBatchSize(rows)
        let outputRowSize = output.rowSize
        output.pointer.update(repeating: 0, count: rows * outputRowSize)
        if !shard.isEmpty {
            input.setBatchSize(shard.count)
            input.pointer.update(from: batch.pointer + shard.lowerBound * rowSize, count: shard.count * rowSize)
            let result = network.forward(input, isTraining: isTraining)
            (output.pointer + shard.lowerBound * outputRowSize).update(from: result.pointer, count: shard.count * outputRowSize)
        }
        // Every other rank's rows are zero here: the sum is the gathered output.
        collective.allreduceSum(UnsafeMutableBufferPointer(start: output.pointer, count: rows * outputRowSize))
        return output
    }

    func backward(_ gradient: Tensor) {
        network.zeroGradients()
        if !shard.isEmpty {
            let rowSize = gradient.rowSize
            outputGradient.reshape([shard.count] + network.outputShape)
            outputGradient.pointer.update(from: gradient.pointer + shard.lowerBound * rowSize, count: shard.count * rowSize)
            network.backward(outputGradient)
        }
        pack(\.gradient)
        flat.withUnsafeMutableBufferPointer { collective.allreduceSum($0) }
        unpack(into: \.gradient)
    }

    /// Rank 0's numbers (validation loss and accuracy) on every rank, so every rank's schedule and early
    /// stopping decide alike; ranks > 0 skip computing them.
    func shareEvaluation(_ evaluation: Evaluation?) -> Evaluation {
        var numbers = [evaluation?.loss ?? 0, evaluation?.accuracy ?? .nan]
        numbers.withUnsafeMutableBufferPointer { collective.broadcast($0, from: 0) }
        if let evaluation, isRecorder { return evaluation }
        return Evaluation(loss: numbers[0], accuracy: numbers[1].isNaN ? nil : numbers[1])
    }

    private func pack(_ tensor: KeyPath<Parameter, Tensor>) {
        flat.withUnsafeMutableBufferPointer { buffer in
            var offset = 0
            for parameter in parameters {
                (buffer.baseAddress! + offset).update(from: parameter[keyPath: tensor].pointer, count: parameter.count)
                offset += parameter.count
            }
        }
    }

    private func unpack(into tensor: KeyPath<Parameter, Tensor>) {
        flat.withUnsafeBufferPointer { buffer in
            var offset = 0
            for parameter in parameters {
                parameter[keyPath: tensor].pointer.update(from: buffer.baseAddress! + offset, count: parameter.count)
                offset += parameter.count
            }
        }
    }
}
