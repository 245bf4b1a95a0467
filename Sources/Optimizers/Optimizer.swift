import Tensors

/// A first-order optimizer: it updates `parameters` in place from the gradients they hold.
///
/// Every optimizer keeps three things apart, like `torch.optim`:
/// - validated hyperparameters (a `…Hyperparameters` value, checked by the initializer),
/// - per-parameter state (momentum buffers, moment estimates), created on the first `step()`
///   and never reallocated afterwards,
/// - the update rule, in `step()`, which allocates nothing.
///
/// The state is visible as tensors named like torch's `optimizer.state_dict()["state"]`
/// (`"<parameter index>.<buffer>"`), so a checkpoint can save it with `stateTensors()` and
/// put it back with `restoreState(from:)`.
public protocol Optimizer: AnyObject {
    /// The parameters it updates, in the model's order; state tensors are keyed by index into it.
    var parameters: [Parameter] { get }

    /// The learning rate of the next step; schedules set it. Starts at the hyperparameters' `lr`.
    var learningRate: Float { get set }

    /// Applies one update from the gradients currently in `parameters` (it does not zero them).
    func step()

    /// Zeroes the gradient of every parameter (a default implementation is provided).
    func zeroGradients()

    /// The optimizer's state, named like torch's state dict: `"0.momentum_buffer"`, `"1.exp_avg"`, `"step"` …
    ///
    /// The tensors are the optimizer's own buffers, not copies: serialize them before the next
    /// `step()`. Empty before the first step (and always, for an optimizer without state).
    func stateTensors() -> [String: Tensor]

    /// Replaces the state with `tensors`, as returned by `stateTensors()` of an optimizer with the
    /// same hyperparameters and parameter shapes. Values are copied. An empty dictionary resets the
    /// optimizer to its state before the first step. Nothing changes when it throws.
    func restoreState(from tensors: [String: Tensor]) throws(OptimizerError)
}

extension Optimizer {
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }
}

/// An invalid hyperparameter or optimizer state.
///
/// `field` is the path under the spec's `optimizer` object (`"lr"`, `"betas[1]"`, `"momentum"`),
/// so the server reports it as `optimizer.<field>`; for `restoreState(from:)` it is the state
/// tensor's name (`"state.0.exp_avg"`).
public struct OptimizerError: Error, Equatable, CustomStringConvertible {
    public let field: String
    /// What is wrong, e.g. `"must be ≥ 0, got -0.1"`.
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field) \(message)" }
}

// MARK: - Hyperparameter checks shared by the optimizers

enum Check {
    /// A finite value > 0 (learning rates).
    static func positive(_ value: Float, _ field: String) -> OptimizerError? {
        guard value.isFinite else { return OptimizerError(field: field, message: "must be a finite number, got \(value)") }
        guard value > 0 else { return OptimizerError(field: field, message: "must be > 0, got \(value)") }
        return nil
    }

    /// A finite value ≥ 0 (momentum, weight decay, eps).
    static func nonNegative(_ value: Float, _ field: String) -> OptimizerError? {
        guard value.isFinite else { return OptimizerError(field: field, message: "must be a finite number, got \(value)") }
        guard value >= 0 else { return OptimizerError(field: field, message: "must be ≥ 0, got \(value)") }
        return nil
    }

    /// Any finite value.
    static func finite(_ value: Float, _ field: String) -> OptimizerError? {
        value.isFinite ? nil : OptimizerError(field: field, message: "must be a finite number, got \(value)")
    }

    /// A value in [0, 1) (Adam's betas).
    static func fraction(_ value: Float, _ field: String) -> OptimizerError? {
        guard value >= 0, value < 1 else { return OptimizerError(field: field, message: "must be in [0, 1), got \(value)") }
        return nil
    }

    /// torch refuses a parameter listed twice: it would be updated twice per step.
    static func distinct(_ parameters: [Parameter]) -> OptimizerError? {
        var seen = Set<ObjectIdentifier>()
        for (index, parameter) in parameters.enumerated() where !seen.insert(ObjectIdentifier(parameter)).inserted {
            return OptimizerError(
                field: "parameters", message: "lists parameter \(index) (\(parameter.name)) more than once")
        }
        return nil
    }
}

// MARK: - State restore helpers

/// Checks and reads the named state tensors of `restoreState(from:)`.
struct StateReader {
    let tensors: [String: Tensor]
    private(set) var used = Set<String>()

    init(_ tensors: [String: Tensor]) { self.tensors = tensors }

    /// The tensor `name`, which must have `parameter`'s shape.
    mutating func buffer(_ name: String, like parameter: Parameter, index: Int) throws(OptimizerError) -> Tensor {
        guard let tensor = tensors[name] else {
            throw OptimizerError(field: "state.\(name)", message: "is missing")
        }
        guard tensor.shape == parameter.shape else {
            throw OptimizerError(
                field: "state.\(name)",
                message: "has shape \(tensor.shape), parameter \(index) (\(parameter.name)) has shape \(parameter.shape)")
        }
        used.insert(name)
        return tensor
    }

    /// The step count stored as a one-element tensor: a whole number ≥ 1.
    mutating func stepCount(_ name: String) throws(OptimizerError) -> Int {
        guard let tensor = tensors[name] else {
            throw OptimizerError(field: "state.\(name)", message: "is missing")
        }
        guard tensor.count == 1, let count = Int(exactly: tensor[0]), count >= 1 else {
            throw OptimizerError(field: "state.\(name)", message: "must hold one whole number ≥ 1, got \(tensor)")
        }
        used.insert(name)
        return count
    }

    /// Refuses tensors nobody asked for: a checkpoint of another optimizer or configuration.
    func checkNothingElse() throws(OptimizerError) {
        if let extra = tensors.keys.filter({ !used.contains($0) }).sorted().first {
            throw OptimizerError(field: "state.\(extra)", message: "is not part of this optimizer's state")
        }
    }
}
