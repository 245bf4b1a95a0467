import NeuralNetwork
import Optimizers
import Tensors

/// The spec's `optimizer`: how parameters are updated from gradients.
public enum OptimizerSpec: Sendable, Equatable {
    /// One mini-batch gradient at a time (sgd, adam, adamw, adagrad, rmsprop, nadam, adadelta).
    case firstOrder(FirstOrderOptimizerSpec)
    /// `gd`: SGD's update on the gradient of the whole training set, one step per epoch.
    case fullBatch(SGDHyperparameters)

    public var typeName: String {
        switch self {
        case .firstOrder(let spec): spec.typeName
        case .fullBatch: "gd"
        }
    }

    public var learningRate: Float {
        switch self {
        case .firstOrder(let spec): spec.learningRate
        case .fullBatch(let hyperparameters): hyperparameters.lr
        }
    }

    /// Whether each step sees the whole training set rather than a mini-batch.
    public var usesFullBatch: Bool {
        if case .fullBatch = self { return true }
        return false
    }

    public func makeOptimizer(parameters: [Parameter]) throws(OptimizerError) -> any Optimizer {
        switch self {
        case .firstOrder(let spec): try spec.makeOptimizer(parameters: parameters)
        case .fullBatch(let hyperparameters): try SGD(parameters: parameters, hyperparameters: hyperparameters)
        }
    }

    /// The hyperparameter keys each type takes, besides `type` (torch's argument names).
    static let keysByType: [String: [String]] = [
        "sgd": ["lr", "momentum", "dampening", "nesterov", "weight_decay"],
        "gd": ["lr", "momentum", "dampening", "nesterov", "weight_decay"],
        "adam": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
        "adamw": ["lr", "betas", "eps", "weight_decay", "amsgrad"],
        "nadam": ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"],
        "adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
        "rmsprop": ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
        "adadelta": ["lr", "rho", "eps", "weight_decay"],
    ]
    static let plannedTypes = ["lbfgs", "bfgs", "newton"]
    static var supportedTypes: [String] { ["gd"] + FirstOrderOptimizerSpec.typeNames }

    /// Reads `optimizer` (default: Adam with torch's defaults), reporting problems under `optimizer.*`.
    static func read(_ root: ObjectReader) -> OptimizerSpec? {
        guard let value = root.fields["optimizer"], value != .null else { return .firstOrder(.adam(AdamHyperparameters())) }
        let path = root.childPath("optimizer")
        var type = "adam"
        if case .object(let fields) = value, let given = fields["type"] {
            guard case .string(let name) = given else {
                root.diagnostics.report("\(path).type", "must be a string, got \(given.kindName)")
                return nil
            }
            type = name
        }
        guard let keys = keysByType[type] else {
            if plannedTypes.contains(type) {
                root.diagnostics.report("\(path).type", "optimizer \"\(type)\" is not supported yet; supported: \(supportedTypes.joined(separator: ", "))")
            } else {
                root.diagnostics.report("\(path).type", "must be one of \((supportedTypes + plannedTypes).joined(separator: ", ")), got \"\(type)\"")
            }
            return nil
        }
        let everyKey = ["type"] + Set(keysByType.values.joined()).sorted()
        guard let optimizer = ObjectReader(value, path: path, diagnostics: root.diagnostics, allowedKeys: everyKey) else { return nil }
        for key in optimizer.fields.keys.sorted() where everyKey.contains(key) && key != "type" && !keys.contains(key) {
            optimizer.report(key, "does not apply to the \(type) optimizer, which takes \(keys.joined(separator: ", "))")
        }
        func float(_ key: String, _ defaultValue: Float) -> Float {
            // Range checks are the optimizers' own (`problems` below), so each rule lives in one place.
            Float(optimizer.double(key, default: Double(defaultValue)))
        }
        func betas(_ defaults: (Float, Float)) -> (Float, Float) {
            guard let given = optimizer.doubleArray("betas") else { return defaults }
            guard given.count == 2 else {
                optimizer.report("betas", "must be two numbers [beta1, beta2], got \(given.count)")
                return defaults
            }
            return (Float(given[0]), Float(given[1]))
        }
        let spec: OptimizerSpec
        switch type {
        case "sgd", "gd":
            let defaults = SGDHyperparameters()
            let hyperparameters = SGDHyperparameters(
                lr: float("lr", defaults.lr), momentum: float("momentum", defaults.momentum),
                dampening: float("dampening", defaults.dampening), nesterov: optimizer.bool("nesterov", default: defaults.nesterov),
                weightDecay: float("weight_decay", defaults.weightDecay))
            spec = type == "gd" ? .fullBatch(hyperparameters) : .firstOrder(.sgd(hyperparameters))
        case "adam":
            let d = AdamHyperparameters()
            let (beta1, beta2) = betas((d.beta1, d.beta2))
            spec = .firstOrder(.adam(AdamHyperparameters(
                lr: float("lr", d.lr), beta1: beta1, beta2: beta2, eps: float("eps", d.eps),
                weightDecay: float("weight_decay", d.weightDecay), amsgrad: optimizer.bool("amsgrad", default: d.amsgrad))))
        case "adamw":
            let d = AdamWHyperparameters()
            let (beta1, beta2) = betas((d.beta1, d.beta2))
            spec = .firstOrder(.adamw(AdamWHyperparameters(
                lr: float("lr", d.lr), beta1: beta1, beta2: beta2, eps: float("eps", d.eps),
                weightDecay: float("weight_decay", d.weightDecay), amsgrad: optimizer.bool("amsgrad", default: d.amsgrad))))
        case "nadam":
            let d = NAdamHyperparameters()
            let (beta1, beta2) = betas((d.beta1, d.beta2))
            spec = .firstOrder(.nadam(NAdamHyperparameters(
                lr: float("lr", d.lr), beta1: beta1, beta2: beta2, eps: float("eps", d.eps),
                weightDecay: float("weight_decay", d.weightDecay), momentumDecay: float("momentum_decay", d.momentumDecay),
                decoupledWeightDecay: optimizer.bool("decoupled_weight_decay", default: d.decoupledWeightDecay))))
        case "adagrad":
            let d = AdagradHyperparameters()
            spec = .firstOrder(.adagrad(AdagradHyperparameters(
                lr: float("lr", d.lr), lrDecay: float("lr_decay", d.lrDecay), weightDecay: float("weight_decay", d.weightDecay),
                initialAccumulatorValue: float("initial_accumulator_value", d.initialAccumulatorValue), eps: float("eps", d.eps))))
        case "rmsprop":
            let d = RMSpropHyperparameters()
            spec = .firstOrder(.rmsprop(RMSpropHyperparameters(
                lr: float("lr", d.lr), alpha: float("alpha", d.alpha), eps: float("eps", d.eps),
                weightDecay: float("weight_decay", d.weightDecay), momentum: float("momentum", d.momentum),
                centered: optimizer.bool("centered", default: d.centered))))
        case "adadelta":
            let d = AdadeltaHyperparameters()
            spec = .firstOrder(.adadelta(AdadeltaHyperparameters(
                lr: float("lr", d.lr), rho: float("rho", d.rho), eps: float("eps", d.eps), weightDecay: float("weight_decay", d.weightDecay))))
        default:
            return nil
        }
        let alreadyReported = Set(optimizer.diagnostics.issues.map(\.path))
        for problem in spec.problems where !alreadyReported.contains(optimizer.childPath(problem.field)) {
            optimizer.report(problem.field, problem.message)
        }
        return spec
    }

    var problems: [OptimizerError] {
        switch self {
        case .firstOrder(let spec): spec.problems
        case .fullBatch(let hyperparameters): hyperparameters.problems
        }
    }

    /// The optimizer with every hyperparameter spelled out, as the stored spec shows it.
    public var jsonValue: JSONValue {
        func betas(_ beta1: Float, _ beta2: Float) -> JSONValue { [JSONValue(beta1), JSONValue(beta2)] }
        switch self {
        case .fullBatch(let h), .firstOrder(.sgd(let h)):
            return ["type": JSONValue(typeName), "lr": JSONValue(h.lr), "momentum": JSONValue(h.momentum),
                    "dampening": JSONValue(h.dampening), "nesterov": .bool(h.nesterov), "weight_decay": JSONValue(h.weightDecay)]
        case .firstOrder(.adam(let h)):
            return ["type": "adam", "lr": JSONValue(h.lr), "betas": betas(h.beta1, h.beta2), "eps": JSONValue(h.eps),
                    "weight_decay": JSONValue(h.weightDecay), "amsgrad": .bool(h.amsgrad)]
        case .firstOrder(.adamw(let h)):
            return ["type": "adamw", "lr": JSONValue(h.lr), "betas": betas(h.beta1, h.beta2), "eps": JSONValue(h.eps),
                    "weight_decay": JSONValue(h.weightDecay), "amsgrad": .bool(h.amsgrad)]
        case .firstOrder(.nadam(let h)):
            return ["type": "nadam", "lr": JSONValue(h.lr), "betas": betas(h.beta1, h.beta2), "eps": JSONValue(h.eps),
                    "weight_decay": JSONValue(h.weightDecay), "momentum_decay": JSONValue(h.momentumDecay),
                    "decoupled_weight_decay": .bool(h.decoupledWeightDecay)]
        case .firstOrder(.adagrad(let h)):
            return ["type": "adagrad", "lr": JSONValue(h.lr), "lr_decay": JSONValue(h.lrDecay), "weight_decay": JSONValue(h.weightDecay),
                    "initial_accumulator_value": JSONValue(h.initialAccumulatorValue), "eps": JSONValue(h.eps)]
        case .firstOrder(.rmsprop(let h)):
            return ["type": "rmsprop", "lr": JSONValue(h.lr), "alpha": JSONValue(h.alpha), "eps": JSONValue(h.eps),
                    "weight_decay": JSONValue(h.weightDecay), "momentum": JSONValue(h.momentum), "centered": .bool(h.centered)]
        case .firstOrder(.adadelta(let h)):
            return ["type": "adadelta", "lr": JSONValue(h.lr), "rho": JSONValue(h.rho), "eps": JSONValue(h.eps),
                    "weight_decay": JSONValue(h.weightDecay)]
        }
    }
}
