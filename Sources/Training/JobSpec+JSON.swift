import Compression
import Datasets
import NeuralNetwork
import Optimizers

extension JobSpec {
    /// The spec with every default filled in, as `GET /v1/jobs/{id}` shows it and the store keeps it.
    public var jsonValue: JSONValue {
        .object([
            "name": JSONValue(name),
            "task": JSONValue(task.rawValue),
            "dataset": dataset.jsonValue,
            "validation": validation.jsonValue,
            "test": test.jsonValue,
            "preprocessing": ["standardize": .bool(standardize)],
            "model": gan?.jsonValue ?? model.jsonValue,
            "loss": loss.jsonValue,
            "optimizer": optimizer.jsonValue,
            "schedule": schedule?.jsonValue ?? .null,
            "training": training.jsonValue,
            "regularization": regularization.jsonValue,
            "early_stopping": earlyStopping?.jsonValue ?? .null,
            "augmentation": AugmentationSpec.jsonValue(augmentation),
            "compression": .array(compression.map(\.jsonValue)),
            "distillation": distillation?.jsonValue ?? .null,
            "init": initialization?.jsonValue ?? .null,
            "distributed": distributed?.jsonValue ?? .null,
            "priority": JSONValue(priority),
            "max_attempts": JSONValue(maxAttempts),
            "notify": notify?.jsonValue ?? .null,
        ])
    }
}

extension GANSpec {
    /// `model` of a GAN job's stored spec; it parses back to the same networks.
    public var jsonValue: JSONValue {
        ["generator": ["latent_dim": JSONValue(latentDim), "layers": .array(generator.layers.map(\.jsonValue))],
         "discriminator": ["input_shape": discriminator.inputShape.map { JSONValue($0) } ?? .null,
                           "layers": .array(discriminator.layers.map(\.jsonValue))]]
    }
}

extension DatasetSource {
    public var jsonValue: JSONValue {
        switch self {
        case .uploaded(let id): ["id": JSONValue(id)]
        case .named(let name): ["name": JSONValue(name)]
        case .builtin(let kind, let options):
            ["builtin": JSONValue(kind.rawValue), "samples": JSONValue(options.samples), "noise": JSONValue(options.noise),
             "classes": JSONValue(kind.fixedClassCount ?? options.classes), "seed": JSONValue(Double(options.seed))]
        }
    }
}

extension HoldOut {
    public var jsonValue: JSONValue {
        switch self {
        case .split(let fraction): ["split": JSONValue(fraction)]
        case .dataset(let id): ["dataset": JSONValue(id)]
        }
    }
}

extension LossSpec {
    public var jsonValue: JSONValue {
        switch self {
        case .crossEntropy(let smoothing, let weighting):
            let weights: JSONValue = switch weighting {
            case nil: .null
            case .balanced: "balanced"
            case .explicit(let values): .array(values.map { JSONValue($0) })
            }
            return ["type": "cross_entropy", "label_smoothing": JSONValue(smoothing), "class_weights": weights]
        case .mse: return ["type": "mse"]
        case .huber(let delta): return ["type": "huber", "delta": JSONValue(delta)]
        case .bceWithLogits: return ["type": "bce_with_logits"]
        }
    }
}

extension Regularization {
    public var jsonValue: JSONValue {
        ["l1": JSONValue(l1), "l2": JSONValue(l2),
         "elastic_net": elasticNet.map { ["alpha": JSONValue($0.alpha), "l1_ratio": JSONValue($0.l1Ratio)] } ?? .null,
         "max_norm": maxNorm.map { JSONValue($0) } ?? .null]
    }
}

extension TrainingOptions {
    public var jsonValue: JSONValue {
        ["epochs": JSONValue(epochs), "batch_size": JSONValue(batchSize), "shuffle": .bool(shuffle), "seed": JSONValue(Double(seed)),
         "gradient_clip_norm": gradientClipNorm.map { JSONValue($0) } ?? .null,
         "gradient_clip_value": gradientClipValue.map { JSONValue($0) } ?? .null, "sampling": JSONValue(sampling.rawValue)]
    }
}

/// What a job needs to know about its data before it runs, so a spec that cannot fit it is
/// refused at submission (422) rather than failing in a worker.
public struct DatasetSummary: Sendable, Equatable {
    public var rows: Int
    public var sampleShape: [Int]
    public var task: LearningTask
    public var classCount: Int?
    /// Regression: values per row.
    public var targetCount: Int

    public init(rows: Int, sampleShape: [Int], task: LearningTask, classCount: Int?, targetCount: Int) {
        self.rows = rows
        self.sampleShape = sampleShape
        self.task = task
        self.classCount = classCount
        self.targetCount = targetCount
    }

    public init(_ dataset: TabularDataset) {
        self.init(rows: dataset.rows, sampleShape: dataset.sampleShape, task: dataset.task,
                  classCount: dataset.classes?.count, targetCount: dataset.targetCount)
    }
}

extension JobSpec {
    /// The spec with `model.input_shape` taken from the data, checked against it: input size,
    /// output units against classes or targets, loss against task, enough rows to split.
    public func resolved(for data: DatasetSummary) throws(SpecProblems) -> JobSpec {
        if task == .gan, let gan { return try resolvedGAN(gan, for: data) }
        let diagnostics = SpecDiagnostics()
        var spec = self
        let features = data.sampleShape.reduce(1, *)
        if let shape = model.inputShape, shape.reduce(1, *) != features {
            diagnostics.report("model.input_shape", "\(shape) holds \(shape.reduce(1, *)) values but the dataset has \(features) features per sample")
        }
        if spec.model.inputShape == nil { spec.model.inputShape = data.sampleShape }
        if standardize, case .embedding? = model.layers.first {
            diagnostics.report("preprocessing.standardize", "must be false for a model that starts with an embedding: its inputs are token indices, which standardizing would turn into fractions")
        }
        // A preset without `classes` ends in a dense layer of 0 units: as many outputs as the data needs.
        if case .dense(0, let activation, let bias)? = spec.model.layers.last {
            let width = data.task == .classification
                ? (loss == .bceWithLogits && data.classCount == 2 ? 1 : data.classCount ?? 1) : data.targetCount
            spec.model.layers[spec.model.layers.count - 1] = .dense(units: width, activation: activation, bias: bias)
        }
        // Shapes follow the model's own input shape even when it disagrees with the data (reported
        // above), so the output layer is still checked against the classes in the same answer.
        let inputShape = spec.model.inputShape ?? data.sampleShape
        guard let summaries = spec.model.summarize(inputShape: inputShape, diagnostics: diagnostics) else {
            throw SpecProblems(issues: diagnostics.issues)
        }
        let outputs = summaries.last?.outputShape.reduce(1, *) ?? features
        let lastLayerPath = "model.layers[\(lastResizingLayerIndex ?? max(model.layers.count - 1, 0))].units"
        switch (loss, data.task) {
        case (.crossEntropy(_, let weighting), .classification):
            let classes = data.classCount ?? 0
            if outputs != classes {
                diagnostics.report(lastLayerPath, "the model has \(outputs) outputs but the dataset has \(classes) classes")
            }
            if case .explicit(let weights) = weighting, weights.count != classes {
                diagnostics.report("loss.class_weights", "lists \(weights.count) weights but the dataset has \(classes) classes")
            }
        case (.crossEntropy, .regression):
            diagnostics.report("loss", "cross_entropy needs class targets, but the dataset's target is numeric (regression); use mse or huber")
        case (.bceWithLogits, .classification):
            if data.classCount != 2 || outputs != 1 {
                diagnostics.report("loss", "bce_with_logits on classes needs 2 classes and 1 output unit (got \(data.classCount ?? 0) classes, \(outputs) outputs); use cross_entropy")
            }
        case (.mse, .classification), (.huber, .classification):
            diagnostics.report("loss", "\(loss.name) needs numeric targets, but the dataset's target has classes; use cross_entropy")
        case (_, .regression):
            if outputs != data.targetCount {
                diagnostics.report(lastLayerPath, "the model has \(outputs) outputs but the dataset has \(data.targetCount) target values per row")
            }
        }
        if let schedule, schedule.kind.typeName == "reduce_on_plateau", schedule.monitor.rawValue.hasPrefix("val_"),
           validation == .split(0) {
            diagnostics.report("schedule.monitor", "\(schedule.monitor.rawValue) needs a validation set; set validation.split > 0 or monitor train_loss")
        }
        if let schedule, schedule.monitor == .train_accuracy || schedule.monitor == .val_accuracy, data.task != .classification {
            diagnostics.report("schedule.monitor", "\(schedule.monitor.rawValue) needs class targets; monitor a loss")
        }
        for issue in AugmentationStep.problems(steps: augmentation, sampleShape: inputShape) {
            diagnostics.report(issue.field ?? "augmentation", issue.message)
        }
        if let stopping = earlyStopping {
            let monitor = stopping.monitor.rawValue
            if monitor.hasPrefix("val_"), validation == .split(0) {
                diagnostics.report("early_stopping.monitor", "\(monitor) needs a validation set; set validation.split > 0 or monitor train_loss")
            }
            if monitor.hasSuffix("accuracy") || monitor.hasSuffix("f1"), data.task != .classification {
                diagnostics.report("early_stopping.monitor", "\(monitor) needs class targets; monitor a loss")
            }
        }
        if training.sampling == .balanced, data.task != .classification {
            diagnostics.report("training.sampling", "balanced sampling needs class targets; the dataset's target is numeric")
        }
        if training.sampling == .balanced, optimizer.usesFullBatch {
            diagnostics.report("training.sampling", "balanced sampling draws mini-batches; \(optimizer.typeName) steps on the whole training set — use class_weights instead")
        }
        if let limit = optimizer.parameterLimit {
            let count = Checked.sum(summaries.map(\.parameters)) ?? Int.max
            if count > limit {
                diagnostics.report("optimizer.type", "\(optimizer.typeName) stores a dense \(count)×\(count) matrix and accepts models of at most \(limit) parameters; this model has \(count). Use lbfgs, or a smaller model")
            }
        }
        if let initialization, let outOfRange = initialization.freeze.first(where: { $0 >= spec.model.layers.count }) {
            diagnostics.report("init.freeze", "lists layer \(outOfRange); the model has \(spec.model.layers.count) layers (0…\(spec.model.layers.count - 1))")
        }
        if distillation != nil, data.task != .classification {
            diagnostics.report("distillation", "needs class targets; the dataset's target is numeric")
        }
        for (index, step) in compression.enumerated() {
            guard case .prune(let prune) = step, prune.structure == .channel else { continue }
            if ChannelSurgery.prunableLayers(of: spec.model, inputShape: inputShape).isEmpty {
                diagnostics.report("compression[\(index)].structure", "channel pruning needs a dense or conv2d layer (groups 1) that feeds another one; this model has none — use \"unstructured\"")
            }
        }
        if optimizer.isSecondOrder, training.gradientClipNorm != nil || training.gradientClipValue != nil {
            diagnostics.report("training.gradient_clip_norm", "gradient clipping would break \(optimizer.typeName)'s line search; leave it null")
        }
        let heldOut = validation.fraction + test.fraction
        let trainingRows = Int(Double(data.rows) * (1 - heldOut))
        if trainingRows < 1 {
            diagnostics.report("validation.split", "leaves no training rows out of \(data.rows)")
        }
        guard diagnostics.isEmpty else { throw SpecProblems(issues: diagnostics.issues) }
        return spec
    }

    /// Index of the last layer that sets the output width (a dense layer).
    private var lastResizingLayerIndex: Int? {
        model.layers.lastIndex { if case .dense = $0 { return true } else { return false } }
    }

    /// A GAN against its data: the discriminator takes the data's samples and answers one logit;
    /// the generator makes samples of exactly the data's shape. The labels play no part.
    private func resolvedGAN(_ gan: GANSpec, for data: DatasetSummary) throws(SpecProblems) -> JobSpec {
        let diagnostics = SpecDiagnostics()
        var gan = gan
        let sampleShape = data.sampleShape
        if let shape = gan.discriminator.inputShape, shape != sampleShape {
            diagnostics.report("model.discriminator.input_shape", "is \(shape) but the dataset's samples have shape \(sampleShape)")
        }
        gan.discriminator.inputShape = sampleShape
        gan.generator.inputShape = [gan.latentDim]
        if case .embedding? = gan.generator.layers.first {
            diagnostics.report("model.generator.layers[0]", "embedding takes token indices, but a generator's input is Gaussian noise; start with a dense layer")
        }
        if let summaries = gan.generator.summarize(inputShape: [gan.latentDim], path: "model.generator.layers", diagnostics: diagnostics) {
            let output = summaries.last?.outputShape ?? [gan.latentDim]
            if output != sampleShape {
                let hint = output.reduce(1, *) == sampleShape.reduce(1, *)
                    ? "; end it with {\"type\": \"reshape\", \"shape\": \(sampleShape)}" : ""
                diagnostics.report("model.generator.layers", "the generator's output shape \(output) must equal the dataset's sample shape \(sampleShape)\(hint)")
            }
        }
        if let summaries = gan.discriminator.summarize(inputShape: sampleShape, path: "model.discriminator.layers", diagnostics: diagnostics) {
            let outputs = summaries.last?.outputShape.reduce(1, *) ?? sampleShape.reduce(1, *)
            if outputs != 1 {
                let layers = gan.discriminator.layers
                let last = layers.lastIndex { if case .dense = $0 { return true } else { return false } }
                let path = last.map { "model.discriminator.layers[\($0)].units" } ?? "model.discriminator.layers[\(max(layers.count - 1, 0))]"
                diagnostics.report(path, "the discriminator must output 1 value (the logit of \"real\") per sample, got \(outputs) (shape \(summaries.last?.outputShape ?? sampleShape))")
            }
        }
        if data.rows < 1 { diagnostics.report("dataset", "has no rows to train on") }
        guard diagnostics.isEmpty else { throw SpecProblems(issues: diagnostics.issues) }
        var spec = self
        spec.gan = gan
        spec.model = gan.generator
        return spec
    }

    /// Trainable parameters (both networks of a GAN) and forward FLOPs per generated sample
    /// (a GAN's generator and discriminator each once), for a resolved spec.
    public var size: (parameters: Int, flopsPerSample: Int)? {
        guard let gan else { return model.size }
        guard let generator = gan.generator.size, let discriminator = gan.discriminator.size else { return nil }
        return (Checked.sum(generator.parameters, discriminator.parameters) ?? Int.max,
                Checked.sum(generator.flopsPerSample, discriminator.flopsPerSample) ?? Int.max)
    }
}

extension ModelSpec {
    /// Trainable parameters and forward multiply–adds ×2 per sample, for a spec whose input shape is resolved.
    public var size: (parameters: Int, flopsPerSample: Int)? {
        guard let inputShape, let summaries = summarize(inputShape: inputShape, diagnostics: SpecDiagnostics()) else { return nil }
        // summarize checked that both totals fit.
        return (Checked.sum(summaries.map(\.parameters)) ?? Int.max, Checked.sum(summaries.map(\.flops)) ?? Int.max)
    }
}
