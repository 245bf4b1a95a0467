import Datasets
import Foundation
import NeuralNetwork
import Optimizers

/// A training job as submitted to `POST /v1/jobs` (API.md § Jobs), with every default filled in.
///
/// `JobSpec.parse` reads it from JSON and reports *every* problem at once with its path; parts of
/// the spec that later work adds (schedules, compression, …) are refused with "not supported yet"
/// instead of being silently ignored.
public struct JobSpec: Sendable {
    public var name: String?
    public var dataset: DatasetSource
    public var validation: HoldOut
    public var test: HoldOut
    public var standardize: Bool
    public var model: ModelSpec
    public var loss: LossSpec
    public var optimizer: OptimizerSpec
    /// nil: a constant learning rate.
    public var schedule: ScheduleSpec?
    public var training: TrainingOptions
    public var regularization: Regularization
    public var priority: Int
    public var maxAttempts: Int
    /// `supervised` (the default) or `gan`.
    public var task: JobTask = .supervised
    /// A GAN job's two networks; nil for a supervised job. `model` is then the generator.
    public var gan: GANSpec? = nil
    /// `init`: start from a finished job's weights (transfer learning); nil starts from scratch.
    public var initialization: InitSpec? = nil
    public var earlyStopping: EarlyStopping? = nil
    /// Random transformations of the training batches (never of validation or test data).
    public var augmentation: [AugmentationStep] = []
    /// What happens to the trained model afterwards: pruning, sensitivity analysis, quantization, in order.
    public var compression: [CompressionStep] = []
    /// Learn from a finished job's model as well as from the labels.
    public var distillation: DistillationSpec? = nil
    /// A webhook for the job's final state.
    public var notify: NotifySpec? = nil
    /// Data-parallel training on in-process replicas; nil trains on one.
    public var distributed: DistributedSpec? = nil
}

/// What a job trains: a model of the targets (`supervised`) or a generator of samples like the
/// data's (`gan`, whose dataset labels are ignored).
public enum JobTask: String, Sendable, CaseIterable {
    case supervised, gan
}

/// `"task": "gan"`: a generator G mapping noise z ~ N(0, I) of `latentDim` values to a sample, and a
/// discriminator D mapping a sample to one logit of "real" (API.md § Jobs).
public struct GANSpec: Sendable, Equatable {
    public static let defaultLatentDim = 32
    /// DCGAN's Adam: lr 2e-4, betas (0.5, 0.999) — the defaults of a GAN job's optimizer.
    public static let defaultLearningRate: Float = 2e-4
    public static let defaultBetas: (Float, Float) = (0.5, 0.999)

    public var latentDim: Int
    /// Input shape `[latentDim]`; its output shape must be the data's sample shape.
    public var generator: ModelSpec
    /// Input shape: the data's sample shape (nil until resolved); it must output one value per sample.
    public var discriminator: ModelSpec

    public init(latentDim: Int, generator: ModelSpec, discriminator: ModelSpec) {
        self.latentDim = latentDim
        self.generator = generator
        self.discriminator = discriminator
    }
}

/// Where the samples come from: an uploaded dataset or a built-in generator.
public enum DatasetSource: Sendable, Equatable {
    case uploaded(id: String)
    /// The newest uploaded dataset with this name; the server turns it into `uploaded(id:)` at submission.
    case named(String)
    case builtin(BuiltinDataset, BuiltinDatasetOptions)

    /// The id the job store records: the dataset id, or `builtin:<name>`.
    public var storageIdentifier: String {
        switch self {
        case .uploaded(let id): id
        case .named(let name): "name:\(name)"
        case .builtin(let kind, _): "builtin:\(kind.rawValue)"
        }
    }
}

/// The validation or test set: a fraction held out of the training data, or a separate dataset.
public enum HoldOut: Sendable, Equatable {
    case split(Double)
    case dataset(id: String)

    public var fraction: Double {
        if case .split(let fraction) = self { return fraction }
        return 0
    }
}

public enum Sampling: String, Sendable, CaseIterable { case uniform, balanced }

public struct TrainingOptions: Sendable, Equatable {
    public var epochs = 20
    public var batchSize = 32
    public var shuffle = true
    public var seed: UInt64 = 0
    public var gradientClipNorm: Double?
    public var gradientClipValue: Double?
    /// `balanced` oversamples the smaller classes each epoch, up to the largest class's count.
    public var sampling = Sampling.uniform
}

/// Penalties over weights (not biases) and constraints on them.
///
/// The loss gains l1·Σ|w| + l2·Σw²; `elastic_net` adds scikit-learn's α·(ρ·Σ|w| + (1−ρ)/2·Σw²).
/// The L1 part is applied as a proximal (soft-threshold) step after each update, so weights reach
/// exact zeros; the L2 part goes into the gradient. `maxNorm` caps each unit's incoming weight norm.
public struct Regularization: Sendable, Equatable {
    public var l1 = 0.0
    public var l2 = 0.0
    public var elasticNet: ElasticNet?
    public var maxNorm: Double?

    public struct ElasticNet: Sendable, Equatable {
        public var alpha: Double
        public var l1Ratio: Double
    }

    /// The total L1 strength: `l1` plus the elastic net's share.
    public var totalL1: Double { l1 + (elasticNet.map { $0.alpha * $0.l1Ratio } ?? 0) }
    /// The total L2 strength: `l2` plus the elastic net's share.
    public var totalL2: Double { l2 + (elasticNet.map { 0.5 * $0.alpha * (1 - $0.l1Ratio) } ?? 0) }
}

/// The spec's `early_stopping`, with Keras' semantics.
public struct EarlyStopping: Sendable, Equatable {
    public enum Monitor: String, Sendable, CaseIterable { case val_loss, val_accuracy, train_loss, train_accuracy, val_macro_f1 }
    public enum Mode: String, Sendable, CaseIterable { case auto, min, max }
    public var monitor = Monitor.val_loss
    public var mode = Mode.auto
    public var patience = 5
    public var minDelta = 0.0
    public var restoreBestWeights = true
    public var baseline: Double?
    public var startFromEpoch = 0

    /// Whether larger values are better (accuracies, F1), resolving `auto` from the monitor's name.
    public var prefersHigher: Bool {
        switch mode {
        case .min: false
        case .max: true
        case .auto: monitor == .val_accuracy || monitor == .train_accuracy || monitor == .val_macro_f1
        }
    }

    public var jsonValue: JSONValue {
        ["monitor": JSONValue(monitor.rawValue), "mode": JSONValue(mode.rawValue), "patience": JSONValue(patience),
         "min_delta": JSONValue(minDelta), "restore_best_weights": .bool(restoreBestWeights),
         "baseline": baseline.map { JSONValue($0) } ?? .null, "start_from_epoch": JSONValue(startFromEpoch)]
    }

    static func read(_ root: ObjectReader) -> EarlyStopping? {
        guard let object = root.object("early_stopping", allowedKeys: [
            "monitor", "mode", "patience", "min_delta", "restore_best_weights", "baseline", "start_from_epoch",
        ]) else { return nil }
        var stopping = EarlyStopping()
        stopping.monitor = object.choice("monitor", default: .val_loss)
        stopping.mode = object.choice("mode", default: .auto)
        stopping.patience = object.int("patience", default: 5, range: 0...100_000)
        stopping.minDelta = object.double("min_delta", default: 0, check: Check.nonNegative)
        stopping.restoreBestWeights = object.bool("restore_best_weights", default: true)
        stopping.baseline = object.optionalDouble("baseline")
        stopping.startFromEpoch = object.int("start_from_epoch", default: 0, range: 0...100_000)
        return stopping
    }
}

extension JobSpec {
    public static let topLevelKeys = [
        "name", "task", "dataset", "validation", "test", "preprocessing", "model", "loss", "optimizer", "schedule",
        "training", "regularization", "early_stopping", "augmentation", "compression", "distillation", "init",
        "distributed", "priority", "max_attempts", "notify",
    ]

    /// Parses and checks a spec. Throws `SpecProblems` listing every issue.
    public static func parse(_ json: JSONValue) throws(SpecProblems) -> JobSpec {
        let diagnostics = SpecDiagnostics()
        let spec = read(json, diagnostics: diagnostics)
        guard diagnostics.isEmpty, let spec else {
            throw SpecProblems(issues: diagnostics.issues.isEmpty ? [SpecIssue(path: "", message: "invalid spec")] : diagnostics.issues)
        }
        return spec
    }

    public static func parse(_ data: Data) throws(SpecProblems) -> JobSpec {
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch { throw SpecProblems(issues: [error as? SpecIssue ?? SpecIssue(path: "", message: "\(error)")]) }
        return try parse(json)
    }

    private static func read(_ json: JSONValue, diagnostics: SpecDiagnostics) -> JobSpec? {
        guard let root = ObjectReader(json, path: "", diagnostics: diagnostics, allowedKeys: topLevelKeys) else { return nil }

        let name = root.optionalString("name")
        if let name, name.count > 200 { root.report("name", "must be at most 200 characters") }
        let taskName = root.string("task", default: "supervised")
        let task = JobTask(rawValue: taskName) ?? .supervised
        if JobTask(rawValue: taskName) == nil { root.report("task", "must be \"supervised\" or \"gan\", got \"\(taskName)\"") }
        let isGAN = task == .gan

        let dataset = readDataset(root, diagnostics: diagnostics)
        // A GAN evaluates nothing on held-out rows: it trains on all of them.
        let validation = readHoldOut(root, key: "validation", defaultFraction: isGAN ? 0 : 0.2)
        let test = readHoldOut(root, key: "test", defaultFraction: 0)
        if isGAN {
            for (key, holdOut) in [("validation", validation), ("test", test)] where holdOut != .split(0) {
                root.report(key, "does not apply to a GAN job, which evaluates nothing on held-out data; leave it out or use {\"split\": 0}")
            }
        }
        if validation.fraction + test.fraction >= 0.95 {
            root.report("test", "validation and test splits together must leave at least 5% for training, got \(validation.fraction + test.fraction)")
        }

        // A GAN's generator learns the data's own scale, so its samples need no un-standardizing by default.
        var standardize = !isGAN
        if let preprocessing = root.object("preprocessing", allowedKeys: ["standardize"]) {
            standardize = preprocessing.bool("standardize", default: !isGAN)
        }

        var model: ModelSpec?
        var gan: GANSpec?
        if let modelValue = root.fields["model"], modelValue != .null {
            if isGAN {
                gan = readGAN(modelValue, diagnostics: diagnostics)
                model = gan?.generator
            } else {
                model = ModelSpec.parse(modelValue, path: "model", diagnostics: diagnostics)
            }
        } else {
            root.report("model", isGAN ? "is required: {\"generator\": {\"latent_dim\": 32, \"layers\": [...]}, \"discriminator\": {\"layers\": [...]}}"
                                       : "is required: {\"layers\": [...]}")
        }

        let loss: LossSpec?
        if isGAN {
            loss = readGANLoss(root)
        } else {
            loss = readLoss(root)
        }
        let optimizer = isGAN ? readGANOptimizer(root) : OptimizerSpec.read(root)
        let training = readTraining(root)
        let regularization = readRegularization(root)
        if isGAN {
            for (key, value) in [("l1", regularization.l1), ("l2", regularization.l2)] where value != 0 {
                root.report("regularization.\(key)", "weight penalties are not supported for GAN jobs yet; use 0")
            }
        }

        var schedule: ScheduleSpec?
        if isGAN {
            if root.has("schedule") { root.report("schedule", "learning-rate schedules are not supported for GAN jobs yet; use null") }
        } else {
            schedule = ScheduleSpec.read(root, learningRate: optimizer?.learningRate)
        }
        let earlyStopping = isGAN ? nil : EarlyStopping.read(root)
        if isGAN { root.rejectUnsupported("early_stopping", "early stopping for GAN jobs") }
        var augmentation: [AugmentationStep] = []
        if isGAN {
            if let items = root.array("augmentation"), !items.isEmpty { root.report("augmentation", "augmentation is not supported for GAN jobs yet; use []") }
        } else {
            augmentation = AugmentationSpec.read(root) ?? []
        }
        var compression: [CompressionStep] = []
        var distillation: DistillationSpec?
        if isGAN {
            if let items = root.array("compression"), !items.isEmpty { root.report("compression", "compression is not supported for GAN jobs; use []") }
            root.rejectUnsupported("distillation", "distilling a GAN")
        } else {
            compression = CompressionStep.read(root)
            distillation = DistillationSpec.read(root)
            if distillation != nil, augmentation.contains(where: { if case .mixup = $0 { true } else { false } }) {
                root.report("distillation", "cannot be combined with mixup augmentation (mixed inputs have no single teacher answer to match); drop one")
            }
            if distillation != nil, let loss, !loss.usesClassTargets {
                root.report("distillation", "needs a classification job with loss \"cross_entropy\" (the teacher's soft labels are class probabilities)")
            }
            if validation == .split(0), let index = compression.firstIndex(where: { step in
                if case .sensitivityAnalysis = step { return true }
                if case .prune(let prune) = step, case .auto = prune.amount { return true }
                return false
            }) {
                root.report("compression[\(index)]", "sensitivity analysis evaluates on the validation set; give validation a split > 0 or a dataset")
            }
        }
        var initialization: InitSpec?
        if isGAN { root.rejectUnsupported("init", "starting a GAN from another job's weights") }
        else { initialization = InitSpec.read(root) }
        var distributed: DistributedSpec?
        if isGAN { root.rejectUnsupported("distributed", "distributed training of a GAN") }
        else { distributed = DistributedSpec.read(root, batchSize: optimizer?.usesFullBatch == true ? nil : training.batchSize) }
        let notify = NotifySpec.read(root)

        let priority = root.int("priority", default: 0, range: -1000...1000)
        let maxAttempts = root.int("max_attempts", default: 3, range: 1...100)

        guard let dataset, let model, let loss, let optimizer else { return nil }
        if isGAN, gan == nil { return nil }
        return JobSpec(
            name: name, dataset: dataset, validation: validation, test: test, standardize: standardize, model: model,
            loss: loss, optimizer: optimizer, schedule: schedule, training: training, regularization: regularization,
            priority: priority, maxAttempts: maxAttempts, task: task, gan: gan, initialization: initialization,
            earlyStopping: earlyStopping, augmentation: augmentation, compression: compression, distillation: distillation,
            notify: notify, distributed: distributed)
    }

    // MARK: GAN jobs

    /// `model` of a GAN job: `{"generator": {"latent_dim", "layers"}, "discriminator": {"layers"}}`.
    /// The discriminator's input shape (the data's sample shape) is filled in by `resolved(for:)`.
    private static func readGAN(_ value: JSONValue, diagnostics: SpecDiagnostics) -> GANSpec? {
        guard let model = ObjectReader(value, path: "model", diagnostics: diagnostics, allowedKeys: ["generator", "discriminator"]) else {
            return nil
        }
        /// The layers (and input shape) of one network, read by the model reader under `path`.
        func network(_ reader: ObjectReader, keys: [String]) -> ModelSpec? {
            guard reader.has("layers") else {
                reader.report("layers", "is required: a list of layers")
                return nil
            }
            var fields: [String: JSONValue] = [:]
            for key in keys { if let field = reader.fields[key] { fields[key] = field } }
            return ModelSpec.parse(.object(fields), path: reader.path, diagnostics: diagnostics)
        }
        var latentDim = GANSpec.defaultLatentDim
        var generator: ModelSpec?
        if let reader = model.object("generator", allowedKeys: ["latent_dim", "layers"]) {
            latentDim = reader.int("latent_dim", default: GANSpec.defaultLatentDim, range: 1...65_536)
            generator = network(reader, keys: ["layers"])
            generator?.inputShape = [latentDim]
        } else if !model.has("generator") {
            model.report("generator", "is required: {\"latent_dim\": \(GANSpec.defaultLatentDim), \"layers\": [...]}")
        }
        var discriminator: ModelSpec?
        if let reader = model.object("discriminator", allowedKeys: ["input_shape", "layers"]) {
            discriminator = network(reader, keys: ["input_shape", "layers"])
        } else if !model.has("discriminator") {
            model.report("discriminator", "is required: {\"layers\": [...]} ending in one output unit")
        }
        guard let generator, let discriminator else { return nil }
        return GANSpec(latentDim: latentDim, generator: generator, discriminator: discriminator)
    }

    /// A GAN trains with BCE on logits (the discriminator's, and the generator's non-saturating loss).
    private static func readGANLoss(_ root: ObjectReader) -> LossSpec? {
        guard root.has("loss") else { return .bceWithLogits }
        guard let loss = readLoss(root) else { return nil }
        if loss != .bceWithLogits {
            root.report("loss", "a GAN job trains with bce_with_logits (the discriminator's loss and the generator's non-saturating loss), got \(loss.name)")
        }
        return loss
    }

    /// The optimizer of both networks (each gets its own instance). Without one: DCGAN's Adam
    /// (lr 2e-4, betas [0.5, 0.999]); Adam, AdamW and NAdam take those as their defaults too.
    private static func readGANOptimizer(_ root: ObjectReader) -> OptimizerSpec? {
        let (beta1, beta2) = GANSpec.defaultBetas
        guard var value = root.fields["optimizer"], value != .null else {
            return .firstOrder(.adam(AdamHyperparameters(lr: GANSpec.defaultLearningRate, beta1: beta1, beta2: beta2)))
        }
        if case .object(var fields) = value {
            let type: String? = if case .string(let name)? = fields["type"] { name } else if fields["type"] == nil { "adam" } else { nil }
            if let type, ["adam", "adamw", "nadam"].contains(type) {
                if fields["lr"] == nil || fields["lr"] == .null { fields["lr"] = JSONValue(GANSpec.defaultLearningRate) }
                if fields["betas"] == nil || fields["betas"] == .null { fields["betas"] = [JSONValue(beta1), JSONValue(beta2)] }
                value = .object(fields)
            }
        }
        guard let holder = ObjectReader(.object(["optimizer": value]), path: root.path, diagnostics: root.diagnostics,
                                        allowedKeys: ["optimizer"]),
              let optimizer = OptimizerSpec.read(holder)
        else { return nil }
        guard case .firstOrder = optimizer else {
            root.report("optimizer.type", "a GAN job takes a first-order optimizer (sgd, adam, adamw, nadam, rmsprop, adagrad, adadelta): its two networks take turns batch by batch; got \(optimizer.typeName)")
            return nil
        }
        return optimizer
    }

    private static func readDataset(_ root: ObjectReader, diagnostics: SpecDiagnostics) -> DatasetSource? {
        guard root.has("dataset") else {
            root.report("dataset", "is required: {\"id\": \"ds_…\"}, {\"name\": \"digits\"} or {\"builtin\": \"spirals\"}")
            return nil
        }
        guard let dataset = root.object("dataset", allowedKeys: ["id", "name", "builtin", "samples", "noise", "classes", "seed"]) else { return nil }
        let id = dataset.optionalString("id"), name = dataset.optionalString("name")
        if id != nil || name != nil {
            for key in ["builtin", "samples", "noise", "classes", "seed"] where dataset.has(key) {
                dataset.report(key, "only applies to a built-in dataset; this spec names an uploaded one")
            }
            if id != nil, name != nil { dataset.report("name", "give either id or name, not both") }
            if let id { return .uploaded(id: id) }
            if let name { return .named(name) }
        }
        guard let builtinName = dataset.optionalString("builtin") else {
            dataset.report("id", "is required (or \"name\" of an uploaded dataset, or \"builtin\")")
            return nil
        }
        let planned: [String] = []
        guard let kind = BuiltinDataset(rawValue: builtinName) else {
            if planned.contains(builtinName) {
                dataset.report("builtin", "built-in dataset \"\(builtinName)\" is not supported yet")
            } else {
                dataset.report("builtin", "must be one of \(BuiltinDataset.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(builtinName)\"")
            }
            return nil
        }
        var options = BuiltinDatasetOptions()
        options.samples = dataset.int("samples", default: options.samples, range: 10...1_000_000)
        options.noise = dataset.double("noise", default: options.noise, check: Check.nonNegative)
        options.classes = dataset.int("classes", default: options.classes, range: 2...100)
        if let fixed = kind.fixedClassCount {
            if dataset.has("classes"), options.classes != fixed {
                dataset.report("classes", "\(kind.rawValue) always has \(fixed) classes, got \(options.classes)")
            }
            options.classes = fixed  // as `jsonValue` writes it, so the filled-in spec parses back to the same one
        }
        options.seed = UInt64(dataset.int("seed", default: 0, range: 0...Int.max))
        return .builtin(kind, options)
    }

    private static func readHoldOut(_ root: ObjectReader, key: String, defaultFraction: Double) -> HoldOut {
        guard let object = root.object(key, allowedKeys: ["split", "dataset"]) else { return .split(defaultFraction) }
        if let id = object.optionalString("dataset") {
            if object.has("split") { object.report("split", "give either split or dataset, not both") }
            return .dataset(id: id)
        }
        return .split(object.double("split", default: defaultFraction, check: { (0..<1).contains($0) ? nil : "must be ≥ 0 and < 1" }))
    }

    /// Reads a `loss` value on its own (the saved model's metadata keeps it).
    static func parseLoss(_ value: JSONValue, diagnostics: SpecDiagnostics) -> LossSpec? {
        guard let holder = ObjectReader(.object(["loss": value]), path: "", diagnostics: diagnostics, allowedKeys: ["loss"]) else { return nil }
        return readLoss(holder)
    }

    private static func readLoss(_ root: ObjectReader) -> LossSpec? {
        let names = ["cross_entropy", "mse", "huber", "bce_with_logits"]
        guard let value = root.fields["loss"], value != .null else { return .crossEntropy(labelSmoothing: 0, classWeights: nil) }
        if case .string(let name) = value {
            switch name {
            case "cross_entropy": return .crossEntropy(labelSmoothing: 0, classWeights: nil)
            case "mse": return .mse
            case "huber": return .huber(delta: 1)
            case "bce_with_logits": return .bceWithLogits
            case "distillation": root.report("loss", "distillation is not a loss here: keep loss \"cross_entropy\" and set the top-level \"distillation\" key ({\"teacher_job\": \"job_…\"})")
            default: root.report("loss", "must be one of \(names.joined(separator: ", ")), got \"\(name)\"")
            }
            return nil
        }
        guard let loss = root.object("loss", allowedKeys: ["type", "label_smoothing", "class_weights", "delta"]) else { return nil }
        let type = loss.string("type", default: "")
        switch type {
        case "cross_entropy":
            let smoothing = loss.double("label_smoothing", default: 0, check: { (0...1).contains($0) ? nil : "must be between 0 and 1" })
            var weighting: ClassWeighting?
            if let weights = loss.fields["class_weights"], weights != .null {
                if weights == .string("balanced") { weighting = .balanced }
                else if let values = loss.doubleArray("class_weights") {
                    if values.isEmpty || values.contains(where: { $0 < 0 }) || values.allSatisfy({ $0 == 0 }) {
                        loss.report("class_weights", "must be \"balanced\" or a list of non-negative weights, not all zero")
                    }
                    weighting = .explicit(values)
                } else if case .string(let other) = weights {
                    loss.report("class_weights", "must be \"balanced\" or a list of weights, got \"\(other)\"")
                }
            }
            if loss.has("delta") { loss.report("delta", "only applies to the huber loss") }
            return .crossEntropy(labelSmoothing: smoothing, classWeights: weighting)
        case "huber":
            for key in ["label_smoothing", "class_weights"] where loss.has(key) { loss.report(key, "only applies to cross_entropy") }
            return .huber(delta: loss.double("delta", default: 1, check: Check.positive))
        case "mse", "bce_with_logits":
            for key in ["label_smoothing", "class_weights", "delta"] where loss.has(key) { loss.report(key, "does not apply to \(type)") }
            return type == "mse" ? .mse : .bceWithLogits
        case "":
            loss.report("type", "is required: one of \(names.joined(separator: ", "))")
        default:
            loss.report("type", "must be one of \(names.joined(separator: ", ")), got \"\(type)\"")
        }
        return nil
    }

    private static func readTraining(_ root: ObjectReader) -> TrainingOptions {
        var options = TrainingOptions()
        guard let training = root.object("training", allowedKeys: [
            "epochs", "batch_size", "shuffle", "seed", "gradient_clip_norm", "gradient_clip_value", "sampling",
        ]) else { return options }
        options.epochs = training.int("epochs", default: options.epochs, range: 1...100_000)
        options.batchSize = training.int("batch_size", default: options.batchSize, range: 1...65_536)
        options.shuffle = training.bool("shuffle", default: true)
        options.seed = UInt64(training.int("seed", default: 0, range: 0...Int.max))
        options.gradientClipNorm = training.optionalDouble("gradient_clip_norm", check: Check.positive)
        options.gradientClipValue = training.optionalDouble("gradient_clip_value", check: Check.positive)
        options.sampling = training.choice("sampling", default: Sampling.uniform)
        return options
    }

    private static func readRegularization(_ root: ObjectReader) -> Regularization {
        var regularization = Regularization()
        guard let object = root.object("regularization", allowedKeys: ["l1", "l2", "elastic_net", "max_norm"]) else { return regularization }
        regularization.l1 = object.double("l1", default: 0, check: Check.nonNegative)
        regularization.l2 = object.double("l2", default: 0, check: Check.nonNegative)
        if let net = object.object("elastic_net", allowedKeys: ["alpha", "l1_ratio"]) {
            if !net.has("alpha") { net.report("alpha", "is required: the strength of the combined penalty") }
            regularization.elasticNet = Regularization.ElasticNet(
                alpha: net.double("alpha", default: 0, check: Check.nonNegative),
                l1Ratio: net.double("l1_ratio", default: 0.5, check: Check.unitInterval))
        }
        regularization.maxNorm = object.optionalDouble("max_norm", check: Check.positive)
        return regularization
    }
}

/// Every problem found in a spec (a 422 with `details`).
public struct SpecProblems: Error, Sendable, CustomStringConvertible {
    public let issues: [SpecIssue]
    public init(issues: [SpecIssue]) { self.issues = issues }
    public var description: String { issues.map(\.description).joined(separator: "; ") }
}
