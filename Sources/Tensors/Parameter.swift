/// A trainable tensor and its gradient.
///
/// Layers own their parameters and expose them in a fixed order (the order of the saved model);
/// optimizers see only parameters, never layers. Gradients accumulate during backward and are
/// zeroed once per step.
public final class Parameter: @unchecked Sendable {
    /// The name within its layer, torch's (`weight`, `bias`, `weight_ih_l0` …).
    public let name: String
    public let value: Tensor
    public let gradient: Tensor
    /// Whether weight penalties (L1/L2, weight decay in regularization) apply: true for weights, false for biases and norms.
    public let isWeight: Bool

    public init(name: String, value: Tensor, isWeight: Bool) {
        self.name = name
        self.value = value
        self.gradient = Tensor(shape: value.shape)
        self.isWeight = isWeight
    }

    public var shape: [Int] { value.shape }
    public var count: Int { value.count }

    public func zeroGradient() { gradient.zero() }
}
