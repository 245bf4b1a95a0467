import Tensors

/// Which first-order optimizer to train with, and its hyperparameters: one value the trainer turns
/// into an optimizer with `makeOptimizer(parameters:)`.
///
/// The case names are the spec's `optimizer.type` values (`typeName`); the hyperparameters carry
/// torch's names and defaults. Second-order optimizers (`lbfgs`, `bfgs`, `newton`) are not here:
/// they step with a closure over the full batch rather than one gradient at a time.
public enum FirstOrderOptimizerSpec: Sendable, Equatable {
    case sgd(SGDHyperparameters)
    case adam(AdamHyperparameters)
    case adamw(AdamWHyperparameters)
    case adagrad(AdagradHyperparameters)
    case rmsprop(RMSpropHyperparameters)
    case nadam(NAdamHyperparameters)
    case adadelta(AdadeltaHyperparameters)

    /// The spec's `optimizer.type` of every case, in declaration order.
    public static let typeNames = ["sgd", "adam", "adamw", "adagrad", "rmsprop", "nadam", "adadelta"]

    /// The spec's `optimizer.type`: `"sgd"`, `"adam"`, `"adamw"`, `"adagrad"`, `"rmsprop"`, `"nadam"` or `"adadelta"`.
    public var typeName: String {
        switch self {
        case .sgd: "sgd"
        case .adam: "adam"
        case .adamw: "adamw"
        case .adagrad: "adagrad"
        case .rmsprop: "rmsprop"
        case .nadam: "nadam"
        case .adadelta: "adadelta"
        }
    }

    /// The initial learning rate, the hyperparameters' `lr`.
    public var learningRate: Float {
        switch self {
        case .sgd(let hyperparameters): hyperparameters.lr
        case .adam(let hyperparameters): hyperparameters.lr
        case .adamw(let hyperparameters): hyperparameters.lr
        case .adagrad(let hyperparameters): hyperparameters.lr
        case .rmsprop(let hyperparameters): hyperparameters.lr
        case .nadam(let hyperparameters): hyperparameters.lr
        case .adadelta(let hyperparameters): hyperparameters.lr
        }
    }

    /// Every invalid hyperparameter, with `field` relative to the spec's `optimizer` object (empty when valid).
    public var problems: [OptimizerError] {
        switch self {
        case .sgd(let hyperparameters): hyperparameters.problems
        case .adam(let hyperparameters): hyperparameters.problems
        case .adamw(let hyperparameters): hyperparameters.problems
        case .adagrad(let hyperparameters): hyperparameters.problems
        case .rmsprop(let hyperparameters): hyperparameters.problems
        case .nadam(let hyperparameters): hyperparameters.problems
        case .adadelta(let hyperparameters): hyperparameters.problems
        }
    }

    /// A new optimizer of this type over `parameters`, with no state yet.
    ///
    /// Throws the first of `problems`, or a parameter listed twice, as the optimizer's initializer does.
    public func makeOptimizer(parameters: [Parameter]) throws(OptimizerError) -> any Optimizer {
        switch self {
        case .sgd(let hyperparameters): try SGD(parameters: parameters, hyperparameters: hyperparameters)
        case .adam(let hyperparameters): try Adam(parameters: parameters, hyperparameters: hyperparameters)
        case .adamw(let hyperparameters): try AdamW(parameters: parameters, hyperparameters: hyperparameters)
        case .adagrad(let hyperparameters): try Adagrad(parameters: parameters, hyperparameters: hyperparameters)
        case .rmsprop(let hyperparameters): try RMSprop(parameters: parameters, hyperparameters: hyperparameters)
        case .nadam(let hyperparameters): try NAdam(parameters: parameters, hyperparameters: hyperparameters)
        case .adadelta(let hyperparameters): try Adadelta(parameters: parameters, hyperparameters: hyperparameters)
        }
    }
}
