import Compression
import Datasets
import Foundation
import NeuralNetwork
import Tensors

/// One model along the compression pipeline, measured: what `GET /v1/jobs/{id}/report` lists and
/// `GET /v1/jobs/{id}/model?stage=` serves.
public struct CompressionStage: Sendable {
    /// `trained` (or `distilled`), `pruned`, `fine_tuned`, `quantized`; a second step of one kind gets `_2`.
    public var name: String
    public var file: Data
    public var parameters: Int
    public var nonzero: Int
    /// The stage on the test set (loss, accuracy, macro F1), when the job has one.
    public var test: Evaluation?
    public var validation: Evaluation?
    public var latencyMillisecondsPerSample: Double

    public var testAccuracy: Double? { test?.accuracy }
    public var testLoss: Double? { test?.loss }
    public var validationAccuracy: Double? { validation?.accuracy }

    public var bytes: Int { file.count }

    public var jsonValue: JSONValue {
        func number(_ value: Double?) -> JSONValue { value.map { JSONValue($0) } ?? .null }
        return ["name": JSONValue(name), "parameters": JSONValue(parameters), "nonzero": JSONValue(nonzero), "bytes": JSONValue(bytes),
                "test_accuracy": number(testAccuracy), "test_loss": number(testLoss), "val_accuracy": number(validationAccuracy),
                "latency_ms_per_sample": JSONValue(latencyMillisecondsPerSample)]
    }
}

/// Validation accuracy and loss of a model with one layer pruned to `sparsity`.
public struct SensitivityPoint: Sendable, Equatable {
    public var sparsity: Double
    public var validationAccuracy: Double?
    public var validationLoss: Double
}

public struct CompressionReport: Sendable {
    public var stages: [CompressionStage]
    /// Per prunable layer (`layers.0`, `layers.3.pointwise`, …) in model order; nil without an analysis.
    public var sensitivity: [(layer: String, points: [SensitivityPoint])]?
    /// Per-layer sparsities `amount: "auto"` chose, by layer.
    public var automaticSparsities: [(layer: String, sparsity: Double)] = []

    public var jsonValue: JSONValue {
        let table: JSONValue = sensitivity.map { rows in
            .object(Dictionary(uniqueKeysWithValues: rows.map { row in
                (row.layer, JSONValue.array(row.points.map {
                    ["sparsity": JSONValue($0.sparsity), "val_accuracy": $0.validationAccuracy.map { JSONValue($0) } ?? .null,
                     "val_loss": JSONValue($0.validationLoss)]
                }))
            }))
        } ?? .null
        var fields: [String: JSONValue] = ["stages": .array(stages.map(\.jsonValue)), "sensitivity": table]
        // JSON objects lose their order; the layer order rides along for charts.
        if let sensitivity { fields["sensitivity_layers"] = .array(sensitivity.map { JSONValue($0.layer) }) }
        if !automaticSparsities.isEmpty {
            fields["auto_sparsity"] = .object(Dictionary(uniqueKeysWithValues: automaticSparsities.map { ($0.layer, JSONValue($0.sparsity)) }))
        }
        return .object(fields)
    }
}

/// Runs the spec's `compression` steps on a trained model, in order, and measures every stage.
///
/// Unstructured pruning keeps the network and holds masks on its weights (composed by
/// multiplication, so iterative pruning prunes among the survivors); channel pruning removes units
/// and filters for real (`ChannelSurgery.shrink`) and goes on with the smaller network. Fine-tuning
/// and quantization-aware training run the job's optimizer (a fresh instance, constant learning
/// rate) with the masks held; their epochs continue the job's metrics after the training epochs.
public final class CompressionPipeline {
    public let spec: JobSpec
    public let data: PreparedData
    private var model: TrainedModel
    private let observer: (any TrainingObserver)?
    private let distillation: Distillation?
    private var masks: [(parameter: Parameter, mask: Tensor)] = []
    private var nextEpoch: Int
    private var stages: [CompressionStage] = []
    private var sensitivity: [(layer: String, points: [SensitivityPoint])]?
    private var automaticSparsities: [(layer: String, sparsity: Double)] = []
    private var randomGenerator: SeededGenerator
    /// Channels each prunable layer had before any channel pruning, for gradual schedules.
    private var originalChannels: [Int: Int] = [:]
    private(set) public var wasStopped = false
    /// The metrics row of the pipeline's last fine-tuning or QAT epoch, if it trained.
    private(set) public var lastMetrics: EpochMetrics?
    /// Whether `sensitivity` describes the current weights (nothing pruned or trained since).
    private var sensitivityIsCurrent = false

    /// - `epochsDone`: training epochs already reported; fine-tuning epochs are numbered after them.
    public init(spec: JobSpec, data: PreparedData, trained model: TrainedModel, epochsDone: Int,
                observer: (any TrainingObserver)?, distillation: Distillation? = nil) {
        self.spec = spec
        self.data = data
        self.model = model
        self.observer = observer
        self.distillation = distillation
        nextEpoch = epochsDone + 1
        randomGenerator = SeededGenerator(seed: spec.training.seed, purpose: "prune")
    }

    /// The report, or nil when the observer stopped the run (cancel or shutdown).
    public func run() throws -> CompressionReport? {
        stages.append(measure(distillation == nil ? "trained" : "distilled"))
        for step in spec.compression {
            switch step {
            case .prune(let prune):
                try runPrune(prune)
                sensitivityIsCurrent = false
            case .sensitivityAnalysis(let sparsities):
                sensitivity = analyseSensitivity(sparsities: sparsities)
                sensitivityIsCurrent = true
            case .quantize(let quantize):
                try runQuantize(quantize)
                sensitivityIsCurrent = false
            }
            if wasStopped { return nil }
        }
        return CompressionReport(stages: stages, sensitivity: sensitivity, automaticSparsities: automaticSparsities)
    }

    /// The model of the last stage.
    public var finalModel: TrainedModel { model }

    private var network: Network { model.network }

    // MARK: Pruning

    /// The weights pruning looks at: every weight matrix and filter bank.
    private var prunableWeights: [(name: String, parameter: Parameter)] {
        WeightQuantization.quantizableParameters(of: network)
    }

    private func runPrune(_ step: PruneSpec) throws {
        guard let schedule = step.schedule else {
            switch step.amount {
            case .fraction(let amount): try prune(step, amount: amount)
            case .auto(let maxDrop): try pruneAutomatically(step, maxAccuracyDrop: maxDrop)
            }
            stages.append(measure(uniqueName("pruned")))
            if step.fineTuneEpochs > 0 {
                try fineTune(epochs: step.fineTuneEpochs)
                if wasStopped { return }
                stages.append(measure(uniqueName("fine_tuned")))
            }
            return
        }
        // Gradual: prune on the schedule's epochs, train in between.
        guard case .fraction(let finalSparsity) = step.amount else { return }
        let polynomial = PolynomialPruningSchedule(beginEpoch: schedule.beginEpoch, endEpoch: schedule.endEpoch,
                                                   frequency: schedule.frequency, initialSparsity: schedule.initialSparsity,
                                                   finalSparsity: finalSparsity, power: schedule.power)
        let startingSparsity = currentSparsity(step)
        var reached = startingSparsity
        for t in 0...step.fineTuneEpochs {
            if polynomial.prunes(atEpoch: t) {
                // The schedule's sparsity is of what this step prunes, on top of what earlier steps left.
                let target = startingSparsity + (1 - startingSparsity) * polynomial.sparsity(atEpoch: t)
                let amount = PolynomialPruningSchedule.incrementalAmount(from: reached, to: target)
                if amount > 0 { try prune(step, amount: amount) }
                reached = max(reached, target)
            }
            if t < step.fineTuneEpochs {
                try fineTune(epochs: 1)
                if wasStopped { return }
            }
        }
        stages.append(measure(uniqueName("pruned")))
    }

    /// What fraction of the step's unit is gone already: weights (unstructured) or channels.
    private func currentSparsity(_ prune: PruneSpec) -> Double {
        guard prune.structure == .channel else {
            let weights = prunableWeights.map(\.parameter)
            let total = weights.reduce(0) { $0 + $1.count }
            let zeros = weights.reduce(0) { sum, p in sum + p.value.values.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } }
            return total == 0 ? 0 : Double(zeros) / Double(total)
        }
        let layers = ChannelSurgery.prunableLayers(of: network)
        let now = layers.reduce(0) { $0 + ChannelSurgery.channelCount(of: network, layer: $1) }
        let before = layers.reduce(0) { $0 + (originalChannels[$1] ?? ChannelSurgery.channelCount(of: network, layer: $1)) }
        return before == 0 ? 0 : 1 - Double(now) / Double(before)
    }

    /// One pruning event at `amount` of what is still alive (per layer, or across layers for global).
    private func prune(_ prune: PruneSpec, amount: Double) throws {
        if prune.structure == .channel {
            try pruneChannels(prune, amount: amount)
            return
        }
        let targets = prunableWeights.map(\.parameter)
        let importance = scores(for: targets, method: prune.method, taylorBatches: prune.taylorBatches)
        let existing = targets.map { existingMask(of: $0) }
        let newMasks: [[Float]]
        switch prune.scope {
        case .global where prune.method != .random:
            newMasks = PruningMasks.global(importances: importance, amount: amount, existing: existing)
        default:
            newMasks = zip(importance, existing).map { scores, mask in
                prune.method == .random
                    ? PruningMasks.random(count: scores.count, amount: amount, existing: mask, generator: &randomGenerator)
                    : PruningMasks.unstructured(importance: scores, amount: amount, existing: mask)
            }
        }
        for (parameter, mask) in zip(targets, newMasks) { setMask(mask, on: parameter) }
    }

    /// Per-layer amounts from a sensitivity analysis: each layer gets the largest analysed sparsity
    /// whose own accuracy drop (loss rise, for regression) stays within `maxAccuracyDrop`.
    /// The drop is measured from the unpruned model (sparsity 0), on the current weights: a table made
    /// before an earlier prune step, or without sparsity 0, is analysed afresh with its sparsities and 0.
    private func pruneAutomatically(_ prune: PruneSpec, maxAccuracyDrop: Double) throws {
        var table = sensitivity ?? []
        if !sensitivityIsCurrent || !(table.first?.points.contains { $0.sparsity == 0 } ?? false) {
            let analysed = Set(table.first?.points.map(\.sparsity) ?? CompressionStep.defaultSparsities)
            table = analyseSensitivity(sparsities: Array(analysed.union([0])))
            if sensitivity == nil { sensitivity = table }
        }
        let targets = prunableWeights
        let importance = scores(for: targets.map(\.parameter), method: prune.method, taylorBatches: prune.taylorBatches)
        for (index, (name, parameter)) in targets.enumerated() {
            let layer = Self.layerName(name)
            guard let points = table.first(where: { $0.layer == layer })?.points, let base = points.first(where: { $0.sparsity == 0 }) else { continue }
            let allowed = points.filter { point in
                if let accuracy = point.validationAccuracy, let baseAccuracy = base.validationAccuracy {
                    return baseAccuracy - accuracy <= maxAccuracyDrop
                }
                return point.validationLoss - base.validationLoss <= maxAccuracyDrop * max(abs(base.validationLoss), 1e-12)
            }
            let sparsity = allowed.map(\.sparsity).max() ?? 0
            automaticSparsities.append((layer, sparsity))
            guard sparsity > 0 else { continue }
            let mask = prune.method == .random
                ? PruningMasks.random(count: parameter.count, amount: sparsity, existing: nil, generator: &randomGenerator)
                : PruningMasks.unstructured(importance: importance[index], amount: sparsity, existing: nil)
            let existing = existingMask(of: parameter)
            setMask(existing.map { zip($0, mask).map { $0 * $1 } } ?? mask, on: parameter)
        }
    }

    /// Removes whole units/filters: scores each output channel by the L2 norm of its importance row,
    /// keeps the best (at least one per layer) and rebuilds a smaller network.
    private func pruneChannels(_ prune: PruneSpec, amount: Double) throws {
        let layers = ChannelSurgery.prunableLayers(of: network)
        for layer in layers where originalChannels[layer] == nil {
            originalChannels[layer] = ChannelSurgery.channelCount(of: network, layer: layer)
        }
        let weights = layers.map { layerWeight(network.layers[$0]) }
        let importance = scores(for: weights, method: prune.method, taylorBatches: prune.taylorBatches)
        let channelScores: [[Float]] = zip(weights, importance).map { weight, scores in
            let channels = weight.shape[0], width = weight.count / channels
            return (0..<channels).map { channel in
                var sum: Float = 0
                for i in (channel * width)..<((channel + 1) * width) { sum += scores[i] * scores[i] }
                // Global scope compares layers of different fan-in: the root-mean-square keeps them on one scale.
                return prune.scope == .global ? (sum / Float(width)).squareRoot() : sum.squareRoot()
            }
        }
        var keep: [Int: [Int]] = [:]
        if prune.scope == .global {
            let flags = PruningMasks.keptChannels(scores: channelScores.flatMap { $0 }, amount: amount, alive: nil)
            var offset = 0
            for (layer, scores) in zip(layers, channelScores) {
                keep[layer] = Self.atLeastOne(Array(flags[offset..<(offset + scores.count)]), scores: scores)
                offset += scores.count
            }
        } else {
            for (layer, scores) in zip(layers, channelScores) {
                keep[layer] = Self.atLeastOne(PruningMasks.keptChannels(scores: scores, amount: amount, alive: nil), scores: scores)
            }
        }
        // Unstructured masks of the old network carry over as "zero stays zero" on the new one.
        let hadMasks = !masks.isEmpty
        let shrunk = ChannelSurgery.shrink(network, keeping: keep)
        model = model.replacingNetwork(shrunk)
        masks = []
        if hadMasks {
            for (_, parameter) in prunableWeights { setMask(parameter.value.values.map { $0 == 0 ? 0 : 1 }, on: parameter) }
        }
    }

    /// The indices flagged true; the best-scoring channel when none is (a layer keeps at least one unit).
    private static func atLeastOne(_ flags: [Bool], scores: [Float]) -> [Int] {
        let kept = flags.indices.filter { flags[$0] }
        if !kept.isEmpty { return kept }
        return [scores.indices.max { scores[$0] < scores[$1] } ?? 0]
    }

    private func layerWeight(_ layer: any Layer) -> Parameter {
        layer.namedParameters.first { $0.name == "weight" }?.parameter ?? layer.parameters[0]
    }

    /// Importance of every weight for `method`: |w|, Taylor |w·g| over training batches, or uniform noise.
    private func scores(for targets: [Parameter], method: PruneSpec.Method, taylorBatches: Int) -> [[Float]] {
        switch method {
        case .magnitude:
            return targets.map { $0.value.values.map { abs($0) } }
        case .random:
            return targets.map { parameter in (0..<parameter.count).map { _ in randomGenerator.nextFloat() } }
        case .taylor:
            let trainer = try? makeTrainer()
            return trainer?.taylorImportance(of: targets, batches: taylorBatches) ?? targets.map { $0.value.values.map { abs($0) } }
        }
    }

    private func existingMask(of parameter: Parameter) -> [Float]? {
        masks.first { $0.parameter === parameter }.map { $0.mask.array }
    }

    /// Sets (replaces) the mask of `parameter` — callers pass masks already composed with the old one —
    /// and applies it.
    private func setMask(_ mask: [Float], on parameter: Parameter) {
        let tensor = Tensor(shape: parameter.shape, values: mask)
        if let index = masks.firstIndex(where: { $0.parameter === parameter }) { masks[index].mask = tensor }
        else { masks.append((parameter, tensor)) }
        let w = parameter.value.pointer
        for i in 0..<parameter.count { w[i] *= mask[i] }
    }

    /// `layers.3.depthwise.weight` → `layers.3.depthwise`.
    static func layerName(_ parameterName: String) -> String {
        parameterName.hasSuffix(".weight") ? String(parameterName.dropLast(".weight".count)) : parameterName
    }

    // MARK: Sensitivity analysis

    /// For each prunable layer alone, at each sparsity: magnitude-prune it (no fine-tuning), evaluate on
    /// the validation set, restore it (Intel Distiller's sensitivity analysis).
    private func analyseSensitivity(sparsities: [Double]) -> [(layer: String, points: [SensitivityPoint])] {
        guard let validation = data.validation else { return [] }
        let evaluator = Evaluator(network: network, loss: LossFunction(spec: spec.loss, classWeights: Trainer.classWeights(for: spec.loss, train: data.train)))
        var table: [(layer: String, points: [SensitivityPoint])] = []
        for (name, parameter) in prunableWeights {
            let saved = parameter.value.array
            let magnitudes = saved.map { abs($0) }
            var points: [SensitivityPoint] = []
            for sparsity in sparsities.sorted() {
                let mask = PruningMasks.unstructured(importance: magnitudes, amount: sparsity, existing: nil)
                for i in 0..<parameter.count { parameter.value[i] = saved[i] * mask[i] }
                let evaluation = evaluator.evaluate(validation)
                points.append(SensitivityPoint(sparsity: sparsity, validationAccuracy: evaluation.accuracy, validationLoss: evaluation.loss))
            }
            _ = parameter.value.values.update(fromContentsOf: saved)
            table.append((Self.layerName(name), points))
        }
        return table
    }

    // MARK: Quantization

    private func runQuantize(_ quantize: QuantizeSpec) throws {
        let weights = WeightQuantization(bits: quantize.bits, scheme: quantize.scheme, granularity: quantize.granularity)
        let quantizers = network.installActivationQuantizers()
        let trainer = try makeTrainer()
        trainer.calibrate(batches: quantize.calibrationBatches)
        for quantizer in quantizers.values { quantizer.finishCalibration() }
        if quantize.mode == .qat {
            for quantizer in quantizers.values { quantizer.keepsObserving = true }
            trainer.weightQuantizer = WeightFakeQuantizer(quantization: weights, network: network)
            try train(trainer, epochs: quantize.qatEpochs)
            for quantizer in quantizers.values { quantizer.keepsObserving = false }
            if wasStopped { return }
        }
        model.quantization = ModelQuantization.quantizing(network, weights: weights, activationGrids: quantizers.compactMapValues(\.grid))
        stages.append(measure(uniqueName("quantized")))
    }

    // MARK: Training and measuring

    /// A trainer on the current network: the job's optimizer afresh at its base learning rate, masks
    /// held, the teacher still teaching.
    private func makeTrainer() throws -> Trainer {
        var fineTuning = spec
        fineTuning.schedule = nil
        fineTuning.earlyStopping = nil
        fineTuning.initialization = nil
        let trainer = try Trainer(spec: fineTuning, data: data, network: network)
        trainer.masks = masks
        trainer.distillation = distillation
        return trainer
    }

    private func fineTune(epochs: Int) throws {
        try train(try makeTrainer(), epochs: epochs)
    }

    private func train(_ trainer: Trainer, epochs: Int) throws {
        for _ in 0..<epochs {
            guard let metrics = try trainer.trainEpoch(nextEpoch, observer: observer) else {
                wasStopped = true
                return
            }
            observer?.epochDidFinish(metrics)
            lastMetrics = metrics
            nextEpoch += 1
        }
    }

    private func uniqueName(_ base: String) -> String {
        let taken = Set(stages.map(\.name))
        if !taken.contains(base) { return base }
        var index = 2
        while taken.contains("\(base)_\(index)") { index += 1 }
        return "\(base)_\(index)"
    }

    /// Saves and measures the current model as a stage.
    private func measure(_ name: String) -> CompressionStage {
        let lossFunction = LossFunction(spec: spec.loss, classWeights: Trainer.classWeights(for: spec.loss, train: data.train))
        let evaluator = Evaluator(network: network, loss: lossFunction)
        let test = data.test.map { evaluator.evaluate($0) }
        let validation = data.validation.map { evaluator.evaluate($0) }
        let parameters = network.parameters
        let nonzero = parameters.reduce(0) { sum, parameter in sum + parameter.value.values.reduce(0) { $0 + ($1 == 0 ? 0 : 1) } }
        return CompressionStage(name: name, file: model.safetensors(), parameters: network.parameterCount, nonzero: nonzero,
                                test: test, validation: validation, latencyMillisecondsPerSample: latency())
    }

    /// Milliseconds per sample of `TrainedModel.predict` on a request of 64 rows (the best of 5, after a warm-up).
    private func latency() -> Double {
        let source = data.test ?? data.validation ?? data.train
        let rows = min(64, source.rows)
        guard rows > 0 else { return 0 }
        let width = source.featureCount
        let inputs: [[Double]] = (0..<rows).map { row in (0..<width).map { Double(source.features[row * width + $0]) } }
        var best = Double.infinity
        for _ in 0..<6 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try? model.predict(inputs)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return best / Double(rows)
    }
}
