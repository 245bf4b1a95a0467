import Tensors

/// A sequential network built from a `ModelSpec`.
///
/// Forward runs the layers in order; backward runs them in reverse, skipping the input gradient
/// of the first layer unless asked for it (nobody needs dL/dx of the data; a GAN's generator
/// needs its discriminator's).
public final class Network {
    public let spec: ModelSpec
    public let inputShape: [Int]
    public let layers: [any Layer]
    /// Layers run on the *input* of layer i before it (activation fake-quantization of a quantized
    /// model); empty for a plain network. They must keep the shape of what they are given.
    public private(set) var inputTransforms: [(any Layer)?] = []

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
            let layer = Self.makeLayer(layerSpec, inputShape: shape, seed: seed, path: "\(index)", generator: &initGenerator)
            shape = layer.outputShape
            layers.append(layer)
        }
        self.layers = layers
    }

    public var outputShape: [Int] { layers.last?.outputShape ?? inputShape }

    /// The first input value the network cannot take, with why: a value outside the domain of the first
    /// layer (an embedding's token indices). `values` are whole samples, one after another. Checked before
    /// data reaches the kernels, which treat such a value as a broken precondition.
    public func invalidInput(_ values: [Float]) -> (offset: Int, message: String)? {
        guard let embedding = layers.first as? Embedding else { return nil }
        return values.withUnsafeBufferPointer { embedding.firstInvalidIndex(in: $0) }
    }

    /// One layer of a spec for a sample of `inputShape`. The spec was checked by `ModelSpec.summarize`
    /// (every shape fits), so the layers' own preconditions hold. Dropout gets its own generator per
    /// position (`path`) so adding a layer elsewhere does not change its masks.
    static func makeLayer(_ spec: LayerSpec, inputShape shape: [Int], seed: UInt64, path: String,
                          generator: inout SeededGenerator) -> any Layer {
        switch spec {
        case .dense(let units, let activation, let bias):
            return Dense(inputCount: shape.reduce(1, *), units: units, activation: activation, hasBias: bias, generator: &generator)
        case .dropout(let rate):
            return Dropout(rate: Float(rate), inputShape: shape, generator: SeededGenerator(seed: seed, purpose: "dropout.\(path)"))
        case .activation(let function):
            return ActivationLayer(function, inputShape: shape)
        case .conv2d(let filters, let kernel, let stride, let padding, let groups, let bias, let activation):
            let pad = padding.amount(kernel: kernel)
            return Conv2D(inputShape: shape, filters: filters, kernel: (kernel.height, kernel.width), stride: (stride.height, stride.width),
                          padding: (pad.height, pad.width), groups: groups, hasBias: bias, activation: activation, generator: &generator)
        case .depthwiseConv2d(let kernel, let stride, let padding, let multiplier, let bias, let activation):
            let pad = padding.amount(kernel: kernel)
            return Conv2D(inputShape: shape, filters: shape[0] * multiplier, kernel: (kernel.height, kernel.width),
                          stride: (stride.height, stride.width), padding: (pad.height, pad.width), groups: shape[0], hasBias: bias,
                          activation: activation, generator: &generator)
        case .separableConv2d(let filters, let kernel, let stride, let padding):
            return SeparableConv2D(inputShape: shape, filters: filters, kernel: kernel, stride: stride, padding: padding, generator: &generator)
        case .shuffleUnit(let outChannels, let groups, let stride):
            return ShuffleUnit(inputShape: shape, outChannels: outChannels, groups: groups, stride: stride, generator: &generator)
        case .channelShuffle(let groups):
            return ChannelShuffle(groups: groups, inputShape: shape)
        case .maxPool2d(let kernel, let stride):
            return MaxPool2D(inputShape: shape, kernel: (kernel.height, kernel.width), stride: (stride.height, stride.width))
        case .avgPool2d(let kernel, let stride):
            return AvgPool2D(inputShape: shape, kernel: (kernel.height, kernel.width), stride: (stride.height, stride.width))
        case .globalAvgPool2d:
            return GlobalAvgPool2D(inputShape: shape)
        case .batchNorm:
            return BatchNorm(inputShape: shape)
        case .layerNorm:
            // Over the last axis, as torch users write LayerNorm(features) after an embedding or a dense layer.
            return LayerNorm(inputShape: shape, normalizedShape: [shape[shape.count - 1]])
        case .flatten:
            return Flatten(inputShape: shape)
        case .reshape(let target):
            return Reshape(inputShape: shape, shape: target)
        case .embedding(let count, let dim):
            return Embedding(numEmbeddings: count, dim: dim, inputShape: shape, generator: &generator)
        case .lstm(let hidden, let sequences):
            return LSTM(inputShape: shape, hiddenSize: hidden, returnSequences: sequences, generator: &generator)
        case .gru(let hidden, let sequences):
            return GRU(inputShape: shape, hiddenSize: hidden, returnSequences: sequences, generator: &generator)
        case .residual(let inner):
            var layers: [any Layer] = []
            var innerShape = shape
            for (index, layerSpec) in inner.enumerated() {
                let layer = makeLayer(layerSpec, inputShape: innerShape, seed: seed, path: "\(path).\(index)", generator: &generator)
                innerShape = layer.outputShape
                layers.append(layer)
            }
            return Residual(inputShape: shape, layers: layers)
        }
    }

    /// All parameters, layer by layer, in saved-model order.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// `layers.<i>.<name>` for every parameter: the tensor names of the saved model.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.enumerated().flatMap { index, layer in
            layer.namedParameters.map { (name: "layers.\(index).\($0.name)", parameter: $0.parameter) }
        }
    }

    /// `layers.<i>.<name>` for every saved non-trainable tensor (batch norm's running statistics).
    public var namedBuffers: [NamedTensor] {
        layers.enumerated().flatMap { index, layer in
            layer.buffers.map { NamedTensor(name: "layers.\(index).\($0.name)", tensor: $0.tensor) }
        }
    }

    /// Every layer that draws random numbers (dropout), blocks included, in model order.
    public var stochasticLayers: [any StochasticLayer] { layers.flatMap(\.stochasticLayers) }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Multiply–adds ×2 of one forward pass for one sample.
    public var flopsPerSample: Int {
        spec.summarize(inputShape: inputShape, diagnostics: SpecDiagnostics()).flatMap { Checked.sum($0.map(\.flops)) } ?? 0
    }

    public func forward(_ input: Tensor, isTraining: Bool) -> Tensor {
        var x = input
        if inputTransforms.isEmpty {
            for layer in layers { x = layer.forward(x, isTraining: isTraining) }
            return x
        }
        for (layer, transform) in zip(layers, inputTransforms) {
            if let transform { x = transform.forward(x, isTraining: isTraining) }
            x = layer.forward(x, isTraining: isTraining)
        }
        return x
    }

    /// Runs `transform` on the input of layer `index` from now on (nil removes it).
    public func setInputTransform(_ transform: (any Layer)?, before index: Int) {
        if inputTransforms.isEmpty { inputTransforms = Array(repeating: nil, count: layers.count) }
        inputTransforms[index] = transform
        if inputTransforms.allSatisfy({ $0 == nil }) { inputTransforms = [] }
    }

    /// Accumulates every parameter gradient for dL/d(output) = `outputGradient`.
    public func backward(_ outputGradient: Tensor) {
        backward(outputGradient, returnInputGradient: false)
    }

    /// Accumulates every parameter gradient for dL/d(output) = `outputGradient` and, with
    /// `returnInputGradient`, returns dL/d(input) as well: a GAN's generator learns from the
    /// discriminator's input gradient. The tensor belongs to the first layer and is reused by its
    /// next backward. Nil without `returnInputGradient`, or when a layer has no input gradient
    /// (an embedding's integer inputs).
    @discardableResult
    public func backward(_ outputGradient: Tensor, returnInputGradient: Bool) -> Tensor? {
        var gradient = outputGradient
        for index in layers.indices.reversed() {
            guard var next = layers[index].backward(gradient, needsInputGradient: index > 0 || returnInputGradient) else { return nil }
            if !inputTransforms.isEmpty, let transform = inputTransforms[index] {
                guard let passed = transform.backward(next, needsInputGradient: true) else { return nil }
                next = passed
            }
            gradient = next
        }
        return returnInputGradient ? gradient : nil
    }

    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// Copies parameter values from `other` (same architecture).
    public func copyParameters(from other: Network) {
        for (mine, theirs) in zip(parameters, other.parameters) { mine.value.copy(from: theirs.value) }
    }
}
