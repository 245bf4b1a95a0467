import Tensors

/// One layer of a network: forward and backward side by side.
///
/// - `forward` returns a buffer the layer owns and reuses every batch (no allocation once the
///   largest batch has been seen); it keeps what backward needs.
/// - `backward` takes dL/dy, *accumulates* parameter gradients (the optimizer zeroes them once per
///   step) and returns dL/dx, or nil when `needsInputGradient` is false (the first layer).
public protocol Layer: AnyObject {
    /// Per-sample output shape (without the batch dimension).
    var outputShape: [Int] { get }
    /// Trainable parameters in a fixed order: the order of the saved model.
    var parameters: [Parameter] { get }
    /// Non-trainable state saved with the model, e.g. batch norm's `running_mean`, in a fixed order
    /// (torch's buffer names). Default: none.
    var buffers: [NamedTensor] { get }
    var namedParameters: [(name: String, parameter: Parameter)] { get }
    /// The layers that draw random numbers, this one or those inside a block, in a fixed order: a
    /// checkpoint saves their generators. Default: this layer if it is stochastic.
    var stochasticLayers: [any StochasticLayer] { get }
    func forward(_ input: Tensor, isTraining: Bool) -> Tensor
    func backward(_ outputGradient: Tensor, needsInputGradient: Bool) -> Tensor?
}

extension Layer {
    public var buffers: [NamedTensor] { [] }
    public var stochasticLayers: [any StochasticLayer] { (self as? any StochasticLayer).map { [$0] } ?? [] }
    /// Parameters with their names in the saved model, relative to the layer; blocks made of
    /// several layers prefix them (`depthwise.weight`, `bn1.bias`).
    public var namedParameters: [(name: String, parameter: Parameter)] { parameters.map { ($0.name, $0) } }
}

/// A tensor with its name in the saved model (relative to its layer).
public struct NamedTensor {
    public let name: String
    public let tensor: Tensor
    public init(name: String, tensor: Tensor) {
        self.name = name
        self.tensor = tensor
    }
}

/// A layer that draws random numbers while training (dropout, …); the trainer reseeds it.
public protocol StochasticLayer: Layer {
    var generator: SeededGenerator { get set }
}
