import NeuralNetwork
import Optimizers
import Tensors

/// The spec's `optimizer`: how parameters are updated from gradients.
public enum OptimizerSpec: Sendable, Equatable {
    /// One mini-batch gradient at a time (sgd, adam, adamw, adagrad, rmsprop, nadam, adadelta).
    case firstOrder(FirstOrderOptimizerSpec)
    /// `gd`: SGD's update on the gradient of the whole training set, one step per epoch.
    case fullBatch(SGDHyperparameters)
    /// `lbfgs`, `bfgs`, `newton`: one `step(closure)` per epoch over the whole training set.
    case lbfgs(LBFGSHyperparameters)
    case bfgs(BFGSHyperparameters)
    case newton(NewtonHyperparameters)

    /// The most iterations (and function evaluations) one second-order step may take.
    public static let maxIterations = 100_000

    public var typeName: String {
        switch self {
        case .firstOrder(let spec): spec.typeName
        case .fullBatch: "gd"
        case .lbfgs: "lbfgs"
        case .bfgs: "bfgs"
        case .newton: "newton"
        }
    }

    public var learningRate: Float {
        switch self {
        case .firstOrder(let spec): spec.learningRate
        case .fullBatch(let hyperparameters): hyperparameters.lr
        case .lbfgs(let hyperparameters): hyperparameters.lr
        case .bfgs(let hyperparameters): hyperparameters.lr
        case .newton(let hyperparameters): hyperparameters.lr
        }
    }

    /// Whether each step sees the whole training set rather than a mini-batch.
    public var usesFullBatch: Bool {
        if case .firstOrder = self { return false }
        return true
    }

    /// Whether steps go through a loss-and-gradient closure (second-order methods with line searches).
    public var isSecondOrder: Bool {
        switch self {
        case .lbfgs, .bfgs, .newton: true
        case .firstOrder, .fullBatch: false
        }
    }

    /// The optimizer that updates `parameters`: a first-order one steps on the gradient in place,
    /// a second-order one through a closure.
    public enum Made {
        case firstOrder(any Optimizer)
        case secondOrder(any SecondOrderOptimizer)
    }

    public func makeOptimizer(parameters: [Parameter]) throws(OptimizerError) -> Made {
        switch self {
        case .firstOrder(let spec): .firstOrder(try spec.makeOptimizer(parameters: parameters))
        case .fullBatch(let hyperparameters): .firstOrder(try SGD(parameters: parameters, hyperparameters: hyperparameters))
        case .lbfgs(let hyperparameters): .secondOrder(try LBFGS(parameters: parameters, hyperparameters: hyperparameters))
        case .bfgs(let hyperparameters): .secondOrder(try BFGS(parameters: parameters, hyperparameters: hyperparameters))
        case .newton(let hyperparameters): .secondOrder(try Newton(parameters: parameters, hyperparameters: hyperparameters))
        }
    }

    /// The most parameters this method takes (a dense Hessian or its inverse grows as n²), or nil.
    public var parameterLimit: Int? {
        switch self {
        case .lbfgs: LBFGS.parameterLimit
        case .bfgs: BFGS.parameterLimit
        case .newton: Newton.parameterLimit
        case .firstOrder, .fullBatch: nil
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
        "lbfgs": ["lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn"],
        "bfgs": ["lr", "max_iter", "gtol", "c1", "c2", "tolerance_change"],
        "newton": ["lr", "damping", "max_iter", "tolerance_grad", "tolerance_change"],
    ]
    static let plannedTypes: [String] = []
    static var supportedTypes: [String] { ["gd"] + FirstOrderOptimizerSpec.typeNames + ["lbfgs", "bfgs", "newton"] }

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
            // Range checks are the optimizers' own (`problems` below), so each rule lives in one place;
            // here only that the value exists in float32, where the optimizers compute.
            Float(optimizer.double(key, default: Double(defaultValue), check: Check.float32))
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
        case "lbfgs":
            let d = LBFGSHyperparameters()
            var lineSearch = optimizer.optionalString("line_search_fn")
            if let name = lineSearch, !LBFGSHyperparameters.lineSearchFunctions.contains(name) {
                optimizer.report("line_search_fn", "must be null or \"strong_wolfe\", got \"\(name)\"")
                lineSearch = nil
            }
            spec = .lbfgs(LBFGSHyperparameters(
                lr: float("lr", d.lr), maxIter: optimizer.int("max_iter", default: d.maxIter, range: 1...Self.maxIterations),
                maxEval: optimizer.optionalInt("max_eval", range: 1...Self.maxIterations), toleranceGrad: optimizer.double("tolerance_grad", default: d.toleranceGrad),
                toleranceChange: optimizer.double("tolerance_change", default: d.toleranceChange),
                historySize: optimizer.int("history_size", default: d.historySize, range: 1...1000), lineSearchFn: lineSearch))
        case "bfgs":
            let d = BFGSHyperparameters()
            spec = .bfgs(BFGSHyperparameters(
                lr: float("lr", d.lr), maxIter: optimizer.int("max_iter", default: d.maxIter, range: 1...Self.maxIterations), gtol: optimizer.double("gtol", default: d.gtol),
                c1: optimizer.double("c1", default: d.c1), c2: optimizer.double("c2", default: d.c2),
                toleranceChange: optimizer.double("tolerance_change", default: d.toleranceChange)))
        case "newton":
            let d = NewtonHyperparameters()
            spec = .newton(NewtonHyperparameters(
                lr: float("lr", d.lr), damping: optimizer.double("damping", default: d.damping),
                maxIter: optimizer.int("max_iter", default: d.maxIter, range: 1...Self.maxIterations),
                toleranceGrad: optimizer.double("tolerance_grad", default: d.toleranceGrad),
                toleranceChange: optimizer.double("tolerance_change", default: d.toleranceChange)))
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
        case .lbfgs(let hyperparameters): hyperparameters.problems
        case .bfgs(let hyperparameters): hyperparameters.problems
        case .newton(let hyperparameters): hyperparameters.problems
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
        case .lbfgs(let h):
            return ["type": "lbfgs", "lr": JSONValue(h.lr), "max_iter": JSONValue(h.maxIter), "max_eval": JSONValue(h.resolvedMaxEval),
                    "tolerance_grad": JSONValue(h.toleranceGrad), "tolerance_change": JSONValue(h.toleranceChange),
                    "history_size": JSONValue(h.historySize), "line_search_fn": JSONValue(h.lineSearchFn)]
        case .bfgs(let h):
            return ["type": "bfgs", "lr": JSONValue(h.lr), "max_iter": JSONValue(h.maxIter), "gtol": JSONValue(h.gtol),
                    "c1": JSONValue(h.c1), "c2": JSONValue(h.c2), "tolerance_change": JSONValue(h.toleranceChange)]
        case .newton(let h):
            return ["type": "newton", "lr": JSONValue(h.lr), "damping": JSONValue(h.damping), "max_iter": JSONValue(h.maxIter),
                    "tolerance_grad": JSONValue(h.toleranceGrad), "tolerance_change": JSONValue(h.toleranceChange)]
        }
    }
}
