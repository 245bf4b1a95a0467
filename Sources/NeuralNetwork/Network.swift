import Tensors

/// A sequential network built from a `ModelSpec`.
///
/// Forward runs the layers in order; backward runs them in reverse, skipping the input gradient
/// of the first layer (nobody needs dL/dx of the data).
public final class Network {
    public let spec: ModelSpec
    public let inputShape: [Int]
    public let layers: [any Layer]

    /// Builds the layers with torch-like initialization from a generator seeded for `init`,
    /// and dropout generators seeded for `dropout`.
    public init(spec: ModelSpec, seed: UInt64) {
        guard let inputShape = spec.inputShape else { preconditionFailure("model input shape must be resolved") }
        self.spec = spec
        self.inputShape = inputShape
        var initGenerator = SeededGenerator(seed: seed, purpose: "init")
        var layers: [any Layer] = []
        var shape = inputShape
        for (index, layerSpec) in spec.layers.enumerated() {
            let layer: any Layer
            switch layerSpec {
            case .dense(let units, let activation, let bias):
                layer = Dense(inputCount: shape.reduce(1, *), units: units, activation: activation, hasBias: bias,
                              generator: &initGenerator)
            case .dropout(let rate):
                layer = Dropout(rate: Float(rate), inputShape: shape,
                                generator: SeededGenerator(seed: seed, purpose: "dropout.\(index)"))
            case .activation(let function):
                layer = ActivationLayer(function, inputShape: shape)
            }
            shape = layer.outputShape
            layers.append(layer)
        }
        self.layers = layers
    }

    public var outputShape: [Int] { layers.last?.outputShape ?? inputShape }

    /// All parameters, layer by layer, in saved-model order.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// `layers.<i>.<name>` for every parameter: the tensor names of the saved model.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.enumerated().flatMap { index, layer in
            layer.parameters.map { (name: "layers.\(index).\($0.name)", parameter: $0) }
        }
    }

    /// `layers.<i>.<name>` for every saved non-trainable tensor (batch norm's running statistics).
    public var namedBuffers: [NamedTensor] {
        layers.enumerated().flatMap { index, layer in
            layer.buffers.map { NamedTensor(name: "layers.\(index).\($0.name)", tensor: $0.tensor) }
        }
    }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Multiply–adds ×2 of one forward pass for one sample (matrix work only).
    public var flopsPerSample: Int {
        layers.reduce(0) { total, layer in
            if let dense = layer as? Dense { return total + 2 * dense.inputCount * dense.units }
            return total
        }
    }

    public func forward(_ input: Tensor, isTraining: Bool) -> Tensor {
        var x = input
        for layer in layers { x = layer.forward(x, isTraining: isTraining) }
        return x
    }

    /// Accumulates every parameter gradient for dL/d(output) = `outputGradient`.
    public func backward(_ outputGradient: Tensor) {
        var gradient = outputGradient
        for index in layers.indices.reversed() {
            guard let next = layers[index].backward(gradient, needsInputGradient: index > 0) else { break }
            gradient = next
        }
    }

    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// Copies parameter values from `other` (same architecture).
    public func copyParameters(from other: Network) {
        for (mine, theirs) in zip(parameters, other.parameters) { mine.value.copy(from: theirs.value) }
    }
}
