import Compression
import Datasets
import Foundation
import NeuralNetwork
import Optimizers
import Tensors

/// One row of `GET /v1/jobs/{id}/metrics`.
public struct EpochMetrics: Sendable, Equatable, Codable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double?
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var learningRate: Double
    public var gradientNorm: Double
    public var penalty: Double
    public var sparsity: Double
    public var seconds: Double
    public var samplesPerSecond: Double
    /// GAN jobs only (nil otherwise): the discriminator's loss (real + fake BCE), the generator's
    /// non-saturating loss, and the mean D(x) on real and D(G(z)) on generated samples (sigmoid of
    /// the logits, in the discriminator's step).
    public var discriminatorLoss: Double? = nil
    public var generatorLoss: Double? = nil
    public var meanRealScore: Double? = nil
    public var meanFakeScore: Double? = nil
    /// Classification with a validation set: per-class recall and macro F1 on it.
    public var validationClassRecall: [Double?]? = nil
    public var validationMacroF1: Double? = nil
}

extension EpochMetrics {
    /// A supervised epoch's row (a stored one, read back by a process that did not train it).
    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double?, validationLoss: Double?, validationAccuracy: Double?,
                learningRate: Double, gradientNorm: Double, penalty: Double, sparsity: Double, seconds: Double, samplesPerSecond: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.validationLoss = validationLoss
        self.validationAccuracy = validationAccuracy
        self.learningRate = learningRate
        self.gradientNorm = gradientNorm
        self.penalty = penalty
        self.sparsity = sparsity
        self.seconds = seconds
        self.samplesPerSecond = samplesPerSecond
    }
}

/// Loss and accuracy of a model on a dataset (accuracy only for classes).
public struct Evaluation: Sendable, Equatable {
    public var loss: Double
    public var accuracy: Double?
    /// Classification: the fraction of each class's samples predicted as that class (nil for a class absent from the data).
    public var classRecall: [Double?]? = nil
    /// Classification: the mean over classes of F1 = 2·precision·recall / (precision + recall).
    public var macroF1: Double? = nil

    public init(loss: Double, accuracy: Double?, classRecall: [Double?]? = nil, macroF1: Double? = nil) {
        self.loss = loss
        self.accuracy = accuracy
        self.classRecall = classRecall
        self.macroF1 = macroF1
    }
}

/// What the trainer tells the outside world, and asks it.
public protocol TrainingObserver: AnyObject {
    /// Checked between batches: true stops training (cancellation).
    func shouldStop() -> Bool
    func epochDidFinish(_ metrics: EpochMetrics)
    /// After a training epoch, with the checkpoint of the state it ended in (built only if asked):
    /// an observer that saves it must save it before it records the epoch. Default: `epochDidFinish(metrics)`.
    func epochDidFinish(_ metrics: EpochMetrics, checkpoint: () -> Data)
    /// Once per run, after the first optimizer step: how long a job waited to start training. Default: nothing.
    func firstBatchDidFinish()
}

extension TrainingObserver {
    public func epochDidFinish(_ metrics: EpochMetrics, checkpoint: () -> Data) { epochDidFinish(metrics) }
    public func firstBatchDidFinish() {}
}

public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// The loss became NaN or infinite.
    case diverged(epoch: Int, loss: Double)
    case invalidSpec(String)

    public var description: String {
        switch self {
        case .diverged(let epoch, let loss):
            "the training loss became \(loss.isNaN ? "NaN" : "infinite") in epoch \(epoch); try a smaller learning rate (optimizer.lr) or gradient clipping (training.gradient_clip_norm)"
        case .invalidSpec(let message): message
        }
    }
}

public struct TrainingOutcome {
    public var model: TrainedModel
    public var history: [EpochMetrics]
    public var test: Evaluation?
    /// Early stopping: the epoch with the best monitored value, and whether training stopped before its last epoch.
    public var bestEpoch: Int? = nil
    public var stoppedEarly = false
    public var wasStopped: Bool
}

/// Runs mini-batch training of one job: shuffle, forward, loss, backward, penalties, clipping,
/// optimizer step; evaluates on the validation set after every epoch.
///
/// Everything the per-batch path touches is allocated in `init` or on the first batch.
public final class Trainer {
    public let spec: JobSpec
    public let data: PreparedData
    public let network: Network
    /// How parameters are updated: a first-order optimizer stepping on each batch's gradient, or a
    /// second-order method stepping through a loss-and-gradient closure over the training set.
    public let method: OptimizerSpec.Made
    /// The first-order optimizer, if that is the method.
    public var optimizer: (any Optimizer)? {
        if case .firstOrder(let optimizer) = method { return optimizer }
        return nil
    }
    private let parameters: [Parameter]
    let loss: LossFunction

    private let batchInput: Tensor
    private let lossGradient: Tensor
    private var batchClassTargets: [Int32]
    private var batchValueTargets: [Float]
    /// The spec's augmentation of training batches, and mixup's second set of targets and gradient.
    let augmenter: Augmenter?
    private var partnerClassTargets: [Int32]
    private var partnerValueTargets: [Float]
    private let partnerGradient: Tensor
    /// Row indices of the epoch, in visiting order; `epochLength` of them are used.
    var order: [Int]
    private var epochLength: Int
    /// Balanced sampling: each class's training rows, and the largest class's count.
    private let rowsByClass: [[Int]]
    var shuffleGenerator: SeededGenerator
    private let weights: [Parameter]
    /// Samples per step: the spec's batch size, or the whole training set for full-batch methods.
    let batchSize: Int
    /// The learning-rate schedule, stepped per epoch or per batch as the spec says.
    var schedule: LearningRateSchedule?
    /// The learning rate of the last optimizer step, for the epoch's metrics row.
    var lastLearningRate: Float
    /// Whether this run told its observer about its first batch.
    private var firstBatchReported = false

    /// Pruning masks held through fine-tuning: after every update each masked weight is multiplied
    /// by its mask (masks compose by multiplication), and its gradient too, so momentum cannot revive it.
    public var masks: [(parameter: Parameter, mask: Tensor)] = []
    /// Quantization-aware training: weights are fake-quantized around each forward/backward pass.
    public var weightQuantizer: WeightFakeQuantizer?
    /// Knowledge distillation: the teacher's logits on each batch join the labels in the loss.
    public var distillation: Distillation?
    /// `distributed.replicas` > 1: the network's replicas, which share every batch (nil: one network).
    let replicas: ReplicaGroup?
    /// `distributed.processes`: this process's part of a job trained by several (MPI ranks); nil otherwise.
    let ranks: RankGroup?

    /// - `transfer`: weights to start from (the spec's `init`), with the layers to keep fixed.
    /// - `network`: train this network instead of a fresh one of `spec.model` (fine-tuning a compressed model).
    /// - `collective`: the processes this one trains with (`distributed.processes`); every one of them
    ///   builds its trainer from the same spec and data, and rank 0's observer records the run.
    public init(spec: JobSpec, data: PreparedData, transfer: WeightTransfer? = nil, network existing: Network? = nil,
                collective: (any ProcessCollective)? = nil) throws {
        guard spec.model.inputShape != nil else { throw TrainingError.invalidSpec("model.input_shape is not resolved") }
        guard spec.task == .supervised else { throw TrainingError.invalidSpec("task: a GAN job trains with GANTrainer") }
        var spec = spec
        if let existing { spec.model = existing.spec }
        self.spec = spec
        self.data = data
        network = existing ?? Network(spec: spec.model, seed: spec.training.seed)
        // Data the first layer cannot take (an embedding's indices out of range) fails the job here, not in a kernel.
        for (name, set) in [("training", data.train), ("validation", data.validation), ("test", data.test)] {
            guard let set, set.featureCount > 0, let problem = network.invalidInput(set.features) else { continue }
            throw TrainingError.invalidSpec("the \(name) data cannot feed model.layers[0]: the value at row \(problem.offset / set.featureCount + 1), feature \(problem.offset % set.featureCount) \(problem.message)")
        }
        parameters = network.parameters
        if let transfer {
            transfer.apply(to: network)
            // Frozen layers still pass gradients through, but no optimizer moves their weights.
            method = try spec.optimizer.makeOptimizer(parameters: transfer.trainableParameters(of: network))
        } else {
            method = try spec.optimizer.makeOptimizer(parameters: parameters)
        }
        loss = LossFunction(spec: spec.loss, classWeights: Self.classWeights(for: spec.loss, train: data.train))
        let batch = spec.optimizer.usesFullBatch ? max(data.train.rows, 1) : spec.training.batchSize
        batchSize = batch
        batchInput = Tensor(shape: [batch] + network.inputShape)
        lossGradient = Tensor(shape: [batch] + network.outputShape)
        batchClassTargets = [Int32](repeating: 0, count: batch)
        batchValueTargets = [Float](repeating: 0, count: batch * data.train.targetCount)
        augmenter = spec.augmentation.isEmpty ? nil
            : Augmenter(steps: spec.augmentation, sampleShape: network.inputShape, seed: spec.training.seed)
        let mixes = spec.augmentation.contains { if case .mixup = $0 { true } else { false } }
        partnerClassTargets = [Int32](repeating: 0, count: mixes ? batch : 0)
        partnerValueTargets = [Float](repeating: 0, count: mixes ? batch * data.train.targetCount : 0)
        partnerGradient = Tensor(shape: mixes ? [batch] + network.outputShape : [0])
        order = Array(0..<data.train.rows)
        epochLength = data.train.rows
        if spec.training.sampling == .balanced, let classes = data.train.classes {
            var byClass = [[Int]](repeating: [], count: classes.count)
            for (row, label) in data.train.classIndices.enumerated() { byClass[Int(label)].append(row) }
            rowsByClass = byClass
            epochLength = byClass.filter { !$0.isEmpty }.count * (byClass.map(\.count).max() ?? 0)
            order = [Int](repeating: 0, count: epochLength)
        } else {
            rowsByClass = []
        }
        shuffleGenerator = SeededGenerator(seed: spec.training.seed, purpose: "shuffle")
        weights = network.parameters.filter(\.isWeight)
        if let scheduleSpec = spec.schedule {
            let stepsPerEpoch = (max(data.train.rows, 1) + batch - 1) / batch
            let perStep = scheduleSpec.per == .step
            // Saturating at the schedules' bound: a warm-up or run of more steps never ends in practice,
            // and the schedules' own arithmetic (e.g. cosine's 2·t_max) stays within Int.
            func steps(_ epochs: Int) -> Int {
                min(perStep ? Checked.product(epochs, stepsPerEpoch) ?? ScheduleSpec.maxSteps : epochs, ScheduleSpec.maxSteps)
            }
            let runLength = steps(spec.training.epochs)
            let warmup = scheduleSpec.warmup.map { Warmup(steps: steps($0.steps), startFactor: $0.startFactor) }
            let schedule = try LearningRateSchedule(kind: scheduleSpec.kind(runLength: runLength),
                                                    baseLearningRate: Double(spec.optimizer.learningRate), warmup: warmup)
            self.schedule = schedule
        }
        let replicaCount = spec.distributed?.replicas ?? 1
        replicas = replicaCount > 1 ? ReplicaGroup(network: network, replicas: replicaCount, batchSize: batch, seed: spec.training.seed) : nil
        if let collective {
            ranks = RankGroup(network: network, collective: collective, batchSize: batch, seed: spec.training.seed)
        } else {
            ranks = nil
        }
        lastLearningRate = 0
        learningRate = Float(schedule?.learningRate ?? Double(spec.optimizer.learningRate))
        lastLearningRate = learningRate
    }

    /// The replicas that run the next step, or nil when one network does: always with one replica, and
    /// with quantization-aware fine-tuning (its fake-quantized weights and activation observers live
    /// on the trainer's network alone).
    var activeReplicas: (any DataParallelGroup)? {
        guard weightQuantizer == nil, network.inputTransforms.isEmpty else { return nil }
        if let ranks { return ranks }
        return replicas
    }

    /// Whether this process reports the run: always, except in ranks > 0 of a multi-process job.
    var isRecorder: Bool { ranks?.isRecorder ?? true }

    /// The learning rate of the next step, whichever kind of method takes it.
    var learningRate: Float {
        get {
            switch method {
            case .firstOrder(let optimizer): optimizer.learningRate
            case .secondOrder(let optimizer): optimizer.learningRate
            }
        }
        set {
            switch method {
            case .firstOrder(let optimizer): optimizer.learningRate = newValue
            case .secondOrder(let optimizer): optimizer.learningRate = newValue
            }
        }
    }

    /// Class weights resolved against the training split: explicit, or n / (C · count_c) for "balanced".
    static func classWeights(for loss: LossSpec, train: TabularDataset) -> [Float]? {
        guard case .crossEntropy(_, let weighting?) = loss else { return nil }
        switch weighting {
        case .explicit(let values): return values.map(Float.init)
        case .balanced:
            let classCount = train.classes?.count ?? 0
            var counts = [Int](repeating: 0, count: classCount)
            for index in train.classIndices { counts[Int(index)] += 1 }
            return counts.map { $0 == 0 ? 0 : Float(train.rows) / Float(classCount * $0) }
        }
    }

    /// Trains epoch by epoch, from the start or from `checkpoint` (the bytes an observer was handed
    /// after an epoch of a run of this same spec): the run then goes on as if it had not stopped.
    public func run(observer: (any TrainingObserver)? = nil, resumingFrom checkpoint: Data? = nil) throws -> TrainingOutcome {
        var history: [EpochMetrics] = []
        var stopped = false
        var monitor = spec.earlyStopping.map { EarlyStoppingMonitor($0, network: network) }
        var firstEpoch = 1
        var finishedEarly = false
        if let checkpoint {
            let resumed = try restore(checkpoint, monitor: &monitor)
            history = resumed.history
            firstEpoch = resumed.epoch + 1
            finishedEarly = resumed.stoppedEarly
        }
        var epoch = firstEpoch
        while epoch <= spec.training.epochs, !finishedEarly {
            ranks?.broadcastParameters()
            guard let metrics = try trainEpoch(epoch, observer: observer) else { stopped = true; break }
            history.append(metrics)
            // Decided before the checkpoint, so a resumed run knows whether it had already stopped.
            let stopsEarly = monitor?.shouldStop(after: metrics) == true
            let finished = epoch
            observer?.epochDidFinish(metrics) { [monitor] in
                self.checkpoint(epoch: finished, history: history, monitor: monitor, stoppedEarly: stopsEarly)
            }
            if stopsEarly { break }
            epoch += 1
        }
        monitor?.finish()
        let test = isRecorder ? data.test.map { evaluate(on: $0) } : nil
        let model = TrainedModel(network: network, standardization: data.standardization, classes: data.train.classes,
                                 task: data.train.task, loss: spec.loss)
        return TrainingOutcome(model: model, history: history, test: test, bestEpoch: monitor?.bestEpoch,
                               stoppedEarly: monitor?.stoppedEarly ?? false, wasStopped: stopped)
    }

    /// One pass over the training set; nil when the observer asked to stop.
    func trainEpoch(_ epoch: Int, observer: (any TrainingObserver)?) throws -> EpochMetrics? {
        if case .secondOrder(let optimizer) = method { return try trainSecondOrderEpoch(epoch, optimizer, observer: observer) }
        guard case .firstOrder(let optimizer) = method else { return nil }
        let train = data.train
        if !rowsByClass.isEmpty { fillBalancedOrder() }
        if spec.training.shuffle || !rowsByClass.isEmpty { shuffleGenerator.shuffle(&order) }
        let start = DispatchTime.now().uptimeNanoseconds
        var lossSum = 0.0, correct = 0, seen = 0, gradientNormSum = 0.0, steps = 0
        var batchStart = 0
        while batchStart < epochLength {
            if observer?.shouldStop() == true { return nil }
            let count = min(batchSize, epochLength - batchStart)
            // A last batch of one sample has no batch statistics: batch norm cannot train on it.
            if count == 1, batchStart > 0, spec.model.usesBatchStatistics { break }
            loadBatch(from: train, positions: batchStart..<(batchStart + count))
            augmenter?.apply(to: batchInput.pointer, count: count)
            optimizer.zeroGradients()
            weightQuantizer?.quantizeWeights()
            let replicas = activeReplicas
            let output = replicas?.forward(batchInput, isTraining: true) ?? network.forward(batchInput, isTraining: true)
            var batchLoss = batchClassTargets.withUnsafeBufferPointer { classes in
                batchValueTargets.withUnsafeBufferPointer { values in
                    if let distillation {
                        return distillation.evaluate(studentLogits: output, input: batchInput, classTargets: classes.baseAddress!,
                                                     gradient: lossGradient)
                    }
                    return loss.evaluate(predictions: output, classTargets: classes.baseAddress, valueTargets: values.baseAddress,
                                         gradient: lossGradient)
                }
            }
            if let augmenter, let partners = augmenter.mixupPartners {
                batchLoss = mixLoss(batchLoss, output: output, partners: partners, lambda: augmenter.mixupLambda, count: count)
            }
            guard batchLoss.isFinite else { throw TrainingError.diverged(epoch: epoch, loss: batchLoss) }
            if train.task == .classification, loss.spec.usesClassTargets { correct += countCorrect(output) }
            // With replicas: each backpropagates its rows, and their gradients are summed into the network's.
            if let replicas { replicas.backward(lossGradient) } else { network.backward(lossGradient) }
            weightQuantizer?.restoreWeights()
            applyPenaltyGradients()
            maskGradients()
            gradientNormSum += clipGradients()
            lastLearningRate = optimizer.learningRate
            optimizer.step()
            applyWeightConstraints(learningRate: lastLearningRate)
            applyMasks()
            if spec.schedule?.per == .step { advanceSchedule(metric: nil) }
            if !firstBatchReported {
                firstBatchReported = true
                observer?.firstBatchDidFinish()
            }
            lossSum += batchLoss * Double(count)
            seen += count
            steps += 1
            batchStart += count
        }
        return finishEpoch(epoch, lossSum: lossSum, correct: correct, seen: seen, gradientNorm: gradientNormSum / Double(max(steps, 1)),
                           start: start)
    }

    /// Validation, the schedule's epoch step and the metrics row, after an epoch's updates.
    private func finishEpoch(_ epoch: Int, lossSum: Double, correct: Int, seen: Int, gradientNorm: Double, start: UInt64) -> EpochMetrics {
        let train = data.train
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var validation = isRecorder ? data.validation.map { evaluate(on: $0) } : nil
        // Every rank's schedule and early stopping must decide alike: they all go by rank 0's validation.
        if let ranks, data.validation != nil { validation = ranks.shareEvaluation(validation) }
        let trainAccuracy = train.task == .classification && loss.spec.usesClassTargets ? Double(correct) / Double(max(seen, 1)) : nil
        if let scheduleSpec = spec.schedule, scheduleSpec.per == .epoch {
            let metric: Double? = switch scheduleSpec.monitor {
            case .val_loss: validation?.loss
            case .val_accuracy: validation?.accuracy
            case .train_loss: lossSum / Double(max(seen, 1))
            case .train_accuracy: trainAccuracy
            }
            advanceSchedule(metric: metric)
        }
        return EpochMetrics(
            epoch: epoch, trainLoss: lossSum / Double(max(seen, 1)),
            trainAccuracy: trainAccuracy,
            validationLoss: validation?.loss, validationAccuracy: validation?.accuracy,
            learningRate: Double(String(lastLearningRate)) ?? Double(lastLearningRate), gradientNorm: gradientNorm,
            penalty: penalty(), sparsity: sparsity(), seconds: seconds, samplesPerSecond: Double(seen) / max(seconds, 1e-9),
            validationClassRecall: validation?.classRecall, validationMacroF1: validation?.macroF1)
    }

    /// Moves the schedule one step and hands its learning rate to the optimizer.
    private func advanceSchedule(metric: Double?) {
        guard var schedule else { return }
        // A plateau schedule with no metric this epoch (NaN counts as "no improvement", like torch).
        schedule.step(metric: metric ?? (spec.schedule?.kind.typeName == "reduce_on_plateau" ? .nan : nil))
        learningRate = Float(schedule.learningRate)
        self.schedule = schedule
    }

    /// One second-order step (L-BFGS, BFGS, Newton) over the whole training set: the method calls
    /// the closure as often as its line search needs. Dropout stays off so the objective the line
    /// search probes is deterministic.
    private func trainSecondOrderEpoch(_ epoch: Int, _ optimizer: any SecondOrderOptimizer,
                                       observer: (any TrainingObserver)?) throws -> EpochMetrics? {
        if observer?.shouldStop() == true { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = data.train.rows
        loadBatch(from: data.train, positions: 0..<rows)
        var correct = 0, gradientNorm = 0.0, evaluations = 0, dataLossBefore = 0.0
        lastLearningRate = optimizer.learningRate
        let replicas = activeReplicas
        let lossBefore = optimizer.step { [self] in
            for parameter in parameters { parameter.zeroGradient() }
            // With replicas: the training set in shards, their outputs gathered (parameters broadcast first).
            let output = replicas?.forward(batchInput, isTraining: false) ?? network.forward(batchInput, isTraining: false)
            let dataLoss = batchClassTargets.withUnsafeBufferPointer { classes in
                batchValueTargets.withUnsafeBufferPointer { values in
                    loss.evaluate(predictions: output, classTargets: classes.baseAddress, valueTargets: values.baseAddress,
                                  gradient: lossGradient)
                }
            }
            if let replicas { replicas.backward(lossGradient) } else { network.backward(lossGradient) }
            applyPenaltyGradients(includingL1: true)
            maskGradients()
            if evaluations == 0 {
                dataLossBefore = dataLoss
                if data.train.task == .classification, loss.spec.usesClassTargets { correct = countCorrect(output) }
                gradientNorm = parameters.reduce(0.0) {
                    $0 + Double(BLAS.dot(count: $1.count, $1.gradient.pointer, $1.gradient.pointer))
                }.squareRoot()
            }
            evaluations += 1
            return dataLoss + penalty()
        }
        guard lossBefore.isFinite else { throw TrainingError.diverged(epoch: epoch, loss: lossBefore) }
        applyWeightConstraints(learningRate: 0)  // max-norm only: L1 is already in the second-order objective
        applyMasks()
        if spec.schedule != nil, spec.schedule?.per == .step { advanceSchedule(metric: nil) }
        return finishEpoch(epoch, lossSum: dataLossBefore * Double(rows), correct: correct, seen: rows,
                           gradientNorm: gradientNorm, start: start)
    }

    /// Mixup: the inputs are λ·x + (1−λ)·x[partner], so the loss is λ·L(y) + (1−λ)·L(y[partner]),
    /// and so is its gradient (`lossGradient` holds L(y)'s on entry and the mix on return).
    private func mixLoss(_ loss: Double, output: Tensor, partners: UnsafeBufferPointer<Int32>, lambda: Float, count: Int) -> Double {
        // Value targets per row: the regression width, or the 0/1 class of bce_with_logits.
        let width = data.train.task == .classification ? 1 : data.train.targetCount
        for slot in 0..<count {
            let partner = Int(partners[slot])
            if !partnerClassTargets.isEmpty { partnerClassTargets[slot] = batchClassTargets[partner] }
            for j in 0..<min(width, partnerValueTargets.count / max(batchSize, 1)) {
                partnerValueTargets[slot * width + j] = batchValueTargets[partner * width + j]
            }
        }
        let partnerLoss = partnerClassTargets.withUnsafeBufferPointer { classes in
            partnerValueTargets.withUnsafeBufferPointer { values in
                self.loss.evaluate(predictions: output, classTargets: classes.baseAddress, valueTargets: values.baseAddress,
                                   gradient: partnerGradient)
            }
        }
        for i in 0..<lossGradient.count { lossGradient[i] = lambda * lossGradient[i] + (1 - lambda) * partnerGradient[i] }
        return Double(lambda) * loss + Double(1 - lambda) * partnerLoss
    }

    /// Balanced sampling: every class's rows once, plus random repeats of the smaller classes'
    /// rows until each class has as many as the largest (oversampling, redrawn every epoch).
    private func fillBalancedOrder() {
        let target = rowsByClass.map(\.count).max() ?? 0
        var position = 0
        for rows in rowsByClass where !rows.isEmpty {
            for row in rows { order[position] = row; position += 1 }
            for _ in rows.count..<target {
                order[position] = rows[Int(shuffleGenerator.next() % UInt64(rows.count))]
                position += 1
            }
        }
    }

    /// Copies the rows at `order[positions]` into the batch buffers.
    private func loadBatch(from dataset: TabularDataset, positions: Range<Int>) {
        let rowSize = dataset.featureCount
        batchInput.setBatchSize(positions.count)
        dataset.features.withUnsafeBufferPointer { features in
            for (slot, position) in positions.enumerated() {
                let row = order[position]
                (batchInput.pointer + slot * rowSize).update(from: features.baseAddress! + row * rowSize, count: rowSize)
            }
        }
        if dataset.task == .classification {
            for (slot, position) in positions.enumerated() { batchClassTargets[slot] = dataset.classIndices[order[position]] }
            if !loss.spec.usesClassTargets {  // binary classes with bce_with_logits: the class index is the 0/1 target
                for slot in 0..<positions.count { batchValueTargets[slot] = Float(batchClassTargets[slot]) }
            }
        } else {
            let width = dataset.targetCount
            for (slot, position) in positions.enumerated() {
                for j in 0..<width { batchValueTargets[slot * width + j] = dataset.targetValues[order[position] * width + j] }
            }
        }
    }

    private func countCorrect(_ output: Tensor) -> Int {
        let c = output.rowSize
        var correct = 0
        for i in 0..<output.rows {
            let row = output.pointer + i * c
            var best = 0
            for k in 1..<c where row[k] > row[best] { best = k }
            if Int32(best) == batchClassTargets[i] { correct += 1 }
        }
        return correct
    }

    /// Adds d/dw of l2·Σw² to the weights' gradients, and the subgradient l1·sign(w) when
    /// `includingL1` (second-order methods, whose line search needs one smooth-enough objective;
    /// first-order ones apply L1 as a proximal step instead).
    private func applyPenaltyGradients(includingL1: Bool = false) {
        let l1 = includingL1 ? Float(spec.regularization.totalL1) : 0, l2 = Float(spec.regularization.totalL2)
        guard l1 > 0 || l2 > 0 else { return }
        for parameter in weights {
            let w = parameter.value.pointer, g = parameter.gradient.pointer
            for i in 0..<parameter.count {
                let sign: Float = w[i] > 0 ? 1 : (w[i] < 0 ? -1 : 0)
                g[i] += l1 * sign + 2 * l2 * w[i]
            }
        }
    }

    /// After an update: the L1 proximal step w ← sign(w)·max(|w| − lr·l1, 0), which puts weights at
    /// exactly zero, then the max-norm constraint (each unit's incoming weights — a row of a dense
    /// weight, a filter of a convolution — scaled back to norm ≤ c).
    private func applyWeightConstraints(learningRate: Float) {
        let threshold = learningRate * Float(spec.regularization.totalL1)
        if threshold > 0 {
            for parameter in weights {
                let w = parameter.value.pointer
                for i in 0..<parameter.count {
                    let magnitude = abs(w[i]) - threshold
                    w[i] = magnitude > 0 ? (w[i] > 0 ? magnitude : -magnitude) : 0
                }
            }
        }
        guard let maxNorm = spec.regularization.maxNorm.map(Float.init) else { return }
        for parameter in weights where parameter.shape.count >= 2 {
            let units = parameter.shape[0], fanIn = parameter.count / units
            for unit in 0..<units {
                let row = parameter.value.pointer + unit * fanIn
                let norm = BLAS.dot(count: fanIn, row, row).squareRoot()
                if norm > maxNorm { BLAS.scale(count: fanIn, alpha: maxNorm / (norm + 1e-7), x: row) }
            }
        }
    }

    /// First-order Taylor importance |w · ∂L/∂w| of each of `parameters`, summed over up to `batches`
    /// training batches (in inference mode, so dropout does not blur the scores).
    func taylorImportance(of targets: [Parameter], batches: Int) -> [[Float]] {
        var importance = targets.map { [Float](repeating: 0, count: $0.count) }
        shuffleGenerator.shuffle(&order)
        var batchStart = 0, done = 0
        while batchStart < data.train.rows, done < batches {
            let count = min(batchSize, data.train.rows - batchStart)
            loadBatch(from: data.train, positions: batchStart..<(batchStart + count))
            network.zeroGradients()
            let output = network.forward(batchInput, isTraining: false)
            _ = batchClassTargets.withUnsafeBufferPointer { classes in
                batchValueTargets.withUnsafeBufferPointer { values in
                    loss.evaluate(predictions: output, classTargets: classes.baseAddress, valueTargets: values.baseAddress, gradient: lossGradient)
                }
            }
            network.backward(lossGradient)
            for (index, parameter) in targets.enumerated() {
                let w = parameter.value.pointer, g = parameter.gradient.pointer
                for i in 0..<parameter.count { importance[index][i] += abs(w[i] * g[i]) }
            }
            batchStart += count
            done += 1
        }
        network.zeroGradients()
        return importance
    }

    /// Runs up to `batches` training batches forward in inference mode: activation observers watch them.
    func calibrate(batches: Int) {
        shuffleGenerator.shuffle(&order)
        var batchStart = 0, done = 0
        while batchStart < data.train.rows, done < batches {
            let count = min(batchSize, data.train.rows - batchStart)
            loadBatch(from: data.train, positions: batchStart..<(batchStart + count))
            _ = network.forward(batchInput, isTraining: false)
            batchStart += count
            done += 1
        }
    }

    /// Holds pruned weights at zero.
    func applyMasks() {
        for (parameter, mask) in masks {
            let w = parameter.value.pointer, m = mask.pointer
            for i in 0..<parameter.count { w[i] *= m[i] }
        }
    }

    private func maskGradients() {
        for (parameter, mask) in masks {
            let g = parameter.gradient.pointer, m = mask.pointer
            for i in 0..<parameter.count { g[i] *= m[i] }
        }
    }

    /// Clips by value, then by global norm, as the spec says; returns the norm before clipping.
    private func clipGradients() -> Double {
        Training.clipGradients(parameters, byValue: spec.training.gradientClipValue, byNorm: spec.training.gradientClipNorm)
    }

    /// The regularization penalty at the current weights.
    func penalty() -> Double {
        let l1 = spec.regularization.totalL1, l2 = spec.regularization.totalL2
        guard l1 > 0 || l2 > 0 else { return 0 }
        var total = 0.0
        for parameter in weights {
            for value in parameter.value.values { total += l1 * Double(abs(value)) + l2 * Double(value * value) }
        }
        return total
    }

    /// Fraction of weights that are exactly zero.
    func sparsity() -> Double {
        var zeros = 0, total = 0
        for parameter in weights {
            total += parameter.count
            for value in parameter.value.values where value == 0 { zeros += 1 }
        }
        return total == 0 ? 0 : Double(zeros) / Double(total)
    }

    /// Mean loss (and accuracy for classes) in inference mode.
    public func evaluate(on dataset: TabularDataset) -> Evaluation {
        let evaluator = Evaluator(network: network, loss: loss)
        return evaluator.evaluate(dataset)
    }
}

/// Evaluates a network on a dataset in inference mode, in batches.
struct Evaluator {
    let network: Network
    let loss: LossFunction
    var batchSize = 256

    func evaluate(_ dataset: TabularDataset) -> Evaluation {
        guard dataset.rows > 0 else { return Evaluation(loss: 0, accuracy: nil) }
        let input = Tensor(shape: [batchSize] + network.inputShape)
        let gradient = Tensor(shape: [batchSize] + network.outputShape)
        let isClassification = dataset.task == .classification
        var lossSum = 0.0, correct = 0
        let classCount = isClassification ? max(dataset.classes?.count ?? 0, 2) : 0
        var truePositives = [Int](repeating: 0, count: classCount), predictedCounts = truePositives, actualCounts = truePositives
        var classTargets = [Int32](repeating: 0, count: batchSize)
        var valueTargets = [Float](repeating: 0, count: batchSize * max(dataset.targetCount, 1))
        var start = 0
        while start < dataset.rows {
            let count = min(batchSize, dataset.rows - start)
            let rowSize = dataset.featureCount
            input.reshape([count] + network.inputShape)
            dataset.features.withUnsafeBufferPointer { features in
                input.pointer.update(from: features.baseAddress! + start * rowSize, count: count * rowSize)
            }
            if isClassification {
                for i in 0..<count {
                    classTargets[i] = dataset.classIndices[start + i]
                    valueTargets[i] = Float(classTargets[i])
                }
            } else {
                let width = dataset.targetCount
                for i in 0..<(count * width) { valueTargets[i] = dataset.targetValues[start * width + i] }
            }
            let output = network.forward(input, isTraining: false)
            lossSum += Double(count) * classTargets.withUnsafeBufferPointer { classes in
                valueTargets.withUnsafeBufferPointer { values in
                    loss.evaluate(predictions: output, classTargets: classes.baseAddress, valueTargets: values.baseAddress, gradient: gradient)
                }
            }
            if isClassification {
                let c = output.rowSize
                for i in 0..<count {
                    let row = output.pointer + i * c
                    let predicted: Int32
                    if c == 1 { predicted = row[0] > 0 ? 1 : 0 }
                    else {
                        var best = 0
                        for k in 1..<c where row[k] > row[best] { best = k }
                        predicted = Int32(best)
                    }
                    if predicted == classTargets[i] { correct += 1; truePositives[Int(predicted)] += 1 }
                    predictedCounts[Int(predicted)] += 1
                    actualCounts[Int(classTargets[i])] += 1
                }
            }
            start += count
        }
        guard isClassification else { return Evaluation(loss: lossSum / Double(dataset.rows), accuracy: nil) }
        let recall: [Double?] = (0..<classCount).map { actualCounts[$0] == 0 ? nil : Double(truePositives[$0]) / Double(actualCounts[$0]) }
        let f1s: [Double] = (0..<classCount).compactMap { k in
            guard actualCounts[k] > 0 || predictedCounts[k] > 0 else { return nil }
            let precision = predictedCounts[k] == 0 ? 0 : Double(truePositives[k]) / Double(predictedCounts[k])
            let classRecall = actualCounts[k] == 0 ? 0 : Double(truePositives[k]) / Double(actualCounts[k])
            return precision + classRecall == 0 ? 0 : 2 * precision * classRecall / (precision + classRecall)
        }
        return Evaluation(loss: lossSum / Double(dataset.rows), accuracy: Double(correct) / Double(dataset.rows),
                          classRecall: Array(recall.prefix(dataset.classes?.count ?? classCount)),
                          macroF1: f1s.isEmpty ? nil : f1s.reduce(0, +) / Double(f1s.count))
    }
}

/// torch's clip_grad_value_ then clip_grad_norm_ on `parameters`' gradients; returns the global
/// gradient norm before clipping. Shared by the supervised and the GAN trainer.
func clipGradients(_ parameters: [Parameter], byValue value: Double?, byNorm maxNorm: Double?) -> Double {
    if let limit = value.map(Float.init) {
        for parameter in parameters {
            let g = parameter.gradient.pointer
            for i in 0..<parameter.count { g[i] = min(max(g[i], -limit), limit) }
        }
    }
    var squares = 0.0
    for parameter in parameters {
        squares += Double(BLAS.dot(count: parameter.count, parameter.gradient.pointer, parameter.gradient.pointer))
    }
    let norm = squares.squareRoot()
    if let maxNorm, norm > maxNorm {
        let scale = Float(maxNorm / (norm + 1e-6))
        for parameter in parameters { BLAS.scale(count: parameter.count, alpha: scale, x: parameter.gradient.pointer) }
    }
    return norm
}
