import NeuralNetwork
import Tensors

/// Channel pruning that really shrinks a network: removes whole output channels (dense units, conv2d filters)
/// and builds a smaller `Network` from a smaller `ModelSpec`, instead of leaving zeros behind a mask.
///
/// Terms: a *producer* is a dense or conv2d (groups 1) layer that loses output channels; its *consumer* is the
/// next dense or conv2d (groups 1) layer, which reads them. Between the two there may be only layers that keep
/// channels apart: activation, dropout, batch_norm, max_pool2d, avg_pool2d, global_avg_pool2d, flatten.
/// Removing channel c removes
/// - row c of the producer's weight and entry c of its bias,
/// - channel c of every batch norm between (weight, bias, running_mean, running_var; after a flatten a batch
///   norm holds S entries per channel and loses all S),
/// - the consumer's inputs from channel c: for a dense consumer, the block of S features c·S ..< (c+1)·S of its
///   flattened input (S = H·W of a conv output after the pools, 1 after a dense), for a conv2d consumer the
///   input-channel slice W[:, c, :, :].
/// Everything else is copied unchanged, bit for bit.
///
/// Exactness: the shrunk network computes exactly what the original computes once the removed channels are
/// silent — their weight rows and biases zero, and the batch norms' weight and bias for them zero (what
/// `zeroRemovedChannels` does and what masked fine-tuning keeps) — provided every activation such a channel
/// passes maps 0 to 0 (relu, leaky_relu, relu6, elu, gelu, silu, tanh, linear). A silent channel is then 0 all
/// the way to the consumer: a convolution of zeros is 0, batch norm with γ = β = 0 gives β = 0, pools of zeros
/// are 0, so the consumer's inputs that are removed with it only ever added 0.
///
/// An activation with f(0) ≠ 0 (sigmoid, softplus) makes a silent unit output the constant f(0) instead. On the
/// dense → (activation, dropout, flatten) → dense path that constant is folded into the consumer's bias,
/// b_o += Σ_removed W[o, removed] · f(0), which keeps the shrunk network exact (in evaluation; while training,
/// dropout would have scaled the constant randomly, and the fold is its expectation). A consumer without a bias
/// gets one to hold the fold. Only that path is folded: a batch norm between already silences the channel
/// (γ = β = 0), and a conv2d producer's constant plane is not folded (into a convolution, its zero padding makes
/// the contribution position-dependent); such a channel's constant is dropped.
public enum ChannelSurgery {
    /// A layer whose output channels (Dense units / Conv2D filters) can be removed: a Dense, or a Conv2D with groups == 1,
    /// whose output reaches exactly one next Dense or Conv2D (groups == 1) consumer through only channel-preserving layers
    /// (activation, dropout, batch_norm, max_pool2d, avg_pool2d, global_avg_pool2d, flatten). The layer that produces the
    /// model's outputs is never prunable. Top-level layers only (no residual / separable / shuffle internals).
    public static func prunableLayers(of network: Network) -> [Int] {
        network.layers.indices.filter { link(from: $0, in: network) != nil }
    }

    /// The output channels of a dense or conv2d layer — its weight's rows (dim 0), what `ln_structured` scores and
    /// what `keeping` indexes.
    public static func channelCount(of network: Network, layer: Int) -> Int {
        switch network.layers[layer] {
        case let dense as Dense: dense.units
        case let convolution as Conv2D: convolution.filters
        default: preconditionFailure("layer \(layer) is neither dense nor conv2d: it has no channels to prune")
        }
    }

    /// Silences, in place, the channels that `shrink(_:keeping:)` would remove: zeroes their weight rows and bias
    /// entries and the batch norms' weight and bias entries between producer and consumer. Afterwards the network
    /// computes what its shrunk copy computes (see the exactness note on `ChannelSurgery`).
    public static func zeroRemovedChannels(of network: Network, keeping: [Int: [Int]]) {
        for removal in removals(in: network, keeping: keeping) {
            let (weight, bias) = weightAndBias(of: network.layers[removal.link.producer])
            var silenced = [weight.value]
            if let bias { silenced.append(bias.value) }
            for index in removal.link.between {
                if let batchNorm = network.layers[index] as? BatchNorm {
                    silenced += [batchNorm.weight.value, batchNorm.bias.value]
                }
            }
            for tensor in silenced {
                let blockSize = tensor.count / removal.link.channels
                for channel in removal.removed {
                    tensor.values[(channel * blockSize)..<((channel + 1) * blockSize)].update(repeating: 0)
                }
            }
        }
    }

    /// A new Network (new ModelSpec with fewer units/filters) holding only the kept channels: for each prunable layer index
    /// in `keeping`, the sorted output-channel indices to keep (at least one). Copies the kept rows of weight and bias, the
    /// kept entries of every batch norm in between (weight, bias, running_mean, running_var), and the kept input columns of the
    /// consumer (for a Dense after flatten of a conv output [C,H,W], each channel's block of H·W input features; for a Conv2D
    /// consumer, its kept input-channel slices). Every other parameter and buffer is copied unchanged.
    ///
    /// The new network is built with seed 0, which only seeds its dropout generators (every tensor is copied);
    /// the trainer reseeds those.
    public static func shrink(_ network: Network, keeping: [Int: [Int]]) -> Network {
        var layerSpecs = network.spec.layers
        // New values by saved-model name (`layers.<i>.<name>`); a name not here is copied unchanged.
        var replacements: [String: [Float]] = [:]
        var keptRows: [Int: [Int]] = [:]  // producer → its kept output channels
        var keptInputs: [Int: (channels: Int, kept: [Int])] = [:]  // consumer → its producer's channels and the kept ones
        var foldedBias: [Int: [Float]] = [:]  // consumer → what to add to its bias, over its original rows

        for removal in removals(in: network, keeping: keeping) {
            let link = removal.link
            keptRows[link.producer] = removal.kept
            keptInputs[link.consumer] = (link.channels, removal.kept)
            layerSpecs[link.producer] = resized(layerSpecs[link.producer], channels: removal.kept.count)
            for index in link.between {
                guard let batchNorm = network.layers[index] as? BatchNorm else { continue }
                let tensors = [("weight", batchNorm.weight.value), ("bias", batchNorm.bias.value),
                               ("running_mean", batchNorm.runningMean), ("running_var", batchNorm.runningVar)]
                for (name, tensor) in tensors {
                    replacements["layers.\(index).\(name)"] = selectBlocks(tensor.array, count: link.channels, keeping: removal.kept)
                }
            }
            if let fold = biasFold(removal, in: network) {
                foldedBias[link.consumer] = fold
                if weightAndBias(of: network.layers[link.consumer]).bias == nil {
                    layerSpecs[link.consumer] = withBias(layerSpecs[link.consumer])
                }
            }
        }

        for index in Set(keptRows.keys).union(keptInputs.keys) {
            let (weight, bias) = weightAndBias(of: network.layers[index])
            let rows = weight.shape[0]
            var weightValues = weight.value.array
            if let inputs = keptInputs[index] {
                let rowSize = weightValues.count / rows
                weightValues = (0..<rows).flatMap { row in
                    selectBlocks(Array(weightValues[(row * rowSize)..<((row + 1) * rowSize)]), count: inputs.channels, keeping: inputs.kept)
                }
            }
            var biasValues = bias?.value.array
            if let fold = foldedBias[index] {
                biasValues = zip(biasValues ?? Array(repeating: 0, count: rows), fold).map { $0 + $1 }
            }
            if let kept = keptRows[index] {
                weightValues = selectBlocks(weightValues, count: rows, keeping: kept)
                biasValues = biasValues.map { selectBlocks($0, count: rows, keeping: kept) }
            }
            replacements["layers.\(index).weight"] = weightValues
            if let biasValues { replacements["layers.\(index).bias"] = biasValues }
        }

        var spec = network.spec
        spec.layers = layerSpecs
        let shrunk = Network(spec: spec, seed: 0)
        let originals = Dictionary(uniqueKeysWithValues: namedTensors(of: network))
        for (name, tensor) in namedTensors(of: shrunk) {
            if let values = replacements[name] {
                precondition(values.count == tensor.count, "shrink: \(name) has \(tensor.count) values, computed \(values.count)")
                _ = tensor.values.update(fromContentsOf: values)
            } else {
                guard let original = originals[name], original.shape == tensor.shape else {
                    preconditionFailure("shrink: \(name) of shape \(tensor.shape) has no original of that shape")
                }
                tensor.copy(from: original)
            }
        }
        return shrunk
    }

    // MARK: - Producers and consumers

    /// A producer, the channel-preserving layers after it, and the consumer that reads its channels.
    struct ChannelLink {
        let producer: Int
        let channels: Int
        let between: Range<Int>
        let consumer: Int
    }

    /// One producer's channels to remove, checked against the network.
    struct Removal {
        let link: ChannelLink
        let kept: [Int]
        let removed: [Int]
    }

    /// The link from layer `index` to its consumer, or nil when the layer is not prunable.
    static func link(from index: Int, in network: Network) -> ChannelLink? {
        let inputShapes = [network.inputShape] + network.layers.dropLast().map(\.outputShape)
        return link(from: index, layers: network.spec.layers, inputShapes: inputShapes)
    }

    /// The link from layer `index` to the layer that consumes its channels, read from the spec and each
    /// layer's per-sample input shape alone, so a spec is checked without building (allocating) its network.
    static func link(from index: Int, layers specs: [LayerSpec], inputShapes: [[Int]]) -> ChannelLink? {
        let channels: Int
        switch specs[index] {
        case .dense(let units, _, _): channels = units
        case .conv2d(let filters, _, _, _, let groups, _, _) where groups == 1: channels = filters
        default: return nil
        }
        var consumer = index + 1
        while consumer < specs.count, keepsChannelsApart(specs[consumer]) { consumer += 1 }
        guard consumer < specs.count else { return nil }  // produces the model's outputs
        // The shape checks hold for any spec that built; they guard the block arithmetic all the same.
        let consumerInput = inputShapes[consumer]
        switch specs[consumer] {
        case .dense where consumerInput.reduce(1, *) % channels == 0:
            break
        case .conv2d(_, _, _, _, let groups, _, _) where groups == 1 && consumerInput.first == channels:
            break
        default:
            return nil
        }
        return ChannelLink(producer: index, channels: channels, between: (index + 1)..<consumer, consumer: consumer)
    }

    /// The layers of a spec whose output channels can be pruned, for a sample of `inputShape`: what
    /// `prunableLayers(of:)` finds in the built network. Empty when the layers do not fit the shape.
    public static func prunableLayers(of spec: ModelSpec, inputShape: [Int]) -> [Int] {
        guard let summaries = spec.summarize(inputShape: inputShape, diagnostics: SpecDiagnostics()) else { return [] }
        let inputShapes = [inputShape] + summaries.dropLast().map(\.outputShape)
        return spec.layers.indices.filter { link(from: $0, layers: spec.layers, inputShapes: inputShapes) != nil }
    }

    /// Layers that map channel c of their input to channel c of their output and nothing else.
    static func keepsChannelsApart(_ spec: LayerSpec) -> Bool {
        switch spec {
        case .activation, .dropout, .batchNorm, .maxPool2d, .avgPool2d, .globalAvgPool2d, .flatten: true
        default: false
        }
    }

    /// `keeping` checked: every key a prunable layer, its channels in range, distinct and at least one.
    static func removals(in network: Network, keeping: [Int: [Int]]) -> [Removal] {
        keeping.keys.sorted().map { index in
            guard let link = link(from: index, in: network) else {
                preconditionFailure("channel surgery: layer \(index) is not prunable (prunable: \(prunableLayers(of: network)))")
            }
            let kept = keeping[index]!.sorted()
            precondition(!kept.isEmpty, "channel surgery: layer \(index) must keep at least one channel")
            precondition(kept.first! >= 0 && kept.last! < link.channels,
                         "channel surgery: layer \(index) has channels 0..<\(link.channels), asked to keep \(kept)")
            precondition(zip(kept, kept.dropFirst()).allSatisfy { $0 < $1 }, "channel surgery: layer \(index) keeps a channel twice")
            let keptSet = Set(kept)
            return Removal(link: link, kept: kept, removed: (0..<link.channels).filter { !keptSet.contains($0) })
        }
    }

    // MARK: - f(0) folding

    /// What the consumer's bias must gain, over its original rows, for the removed units' constant output f(0);
    /// nil when there is nothing to fold (f(0) = 0, or not the dense → (activation, dropout, flatten) → dense path).
    static func biasFold(_ removal: Removal, in network: Network) -> [Float]? {
        let link = removal.link
        guard let producer = network.layers[link.producer] as? Dense, let consumer = network.layers[link.consumer] as? Dense
        else { return nil }
        var constant = applied(producer.activation, to: 0)
        for index in link.between {
            switch network.layers[index] {
            case let activation as ActivationLayer:
                constant = applied(activation.function, to: constant, negativeSlope: activation.negativeSlope)
            case is Dropout, is Flatten:
                continue  // dropout is the identity in evaluation, flatten of a vector is the identity
            default:
                return nil
            }
        }
        guard constant != 0, !removal.removed.isEmpty else { return nil }
        let weight = consumer.weight.value
        let inputCount = consumer.inputCount
        let blockSize = inputCount / link.channels
        return (0..<consumer.units).map { row in
            var sum: Float = 0
            for channel in removal.removed {
                for feature in (channel * blockSize)..<((channel + 1) * blockSize) { sum += weight[row * inputCount + feature] }
            }
            return sum * constant
        }
    }

    static func applied(_ function: ActivationFunction, to value: Float, negativeSlope: Float = 0.01) -> Float {
        var result = value
        withUnsafeMutablePointer(to: &result) { function.apply($0, $0, count: 1, negativeSlope: negativeSlope) }
        return result
    }

    // MARK: - Tensors and specs

    /// The kept blocks of `values` seen as `count` equal blocks (rows of a weight, a channel's features, …), in order.
    static func selectBlocks(_ values: [Float], count: Int, keeping kept: [Int]) -> [Float] {
        let blockSize = values.count / count
        var selected: [Float] = []
        selected.reserveCapacity(blockSize * kept.count)
        for block in kept { selected += values[(block * blockSize)..<((block + 1) * blockSize)] }
        return selected
    }

    static func weightAndBias(of layer: any Layer) -> (weight: Parameter, bias: Parameter?) {
        switch layer {
        case let dense as Dense: (dense.weight, dense.bias)
        case let convolution as Conv2D: (convolution.weight, convolution.bias)
        default: preconditionFailure("channel surgery: expected a dense or conv2d layer, got \(type(of: layer))")
        }
    }

    /// `spec` (a dense or conv2d layer) with `channels` units / filters.
    static func resized(_ spec: LayerSpec, channels: Int) -> LayerSpec {
        switch spec {
        case .dense(_, let activation, let bias):
            .dense(units: channels, activation: activation, bias: bias)
        case .conv2d(_, let kernel, let stride, let padding, let groups, let bias, let activation):
            .conv2d(filters: channels, kernel: kernel, stride: stride, padding: padding, groups: groups, bias: bias, activation: activation)
        default:
            preconditionFailure("channel surgery: cannot resize \(spec.typeName)")
        }
    }

    /// `spec` (a dense or conv2d layer) with a bias.
    static func withBias(_ spec: LayerSpec) -> LayerSpec {
        switch spec {
        case .dense(let units, let activation, _):
            .dense(units: units, activation: activation, bias: true)
        case .conv2d(let filters, let kernel, let stride, let padding, let groups, _, let activation):
            .conv2d(filters: filters, kernel: kernel, stride: stride, padding: padding, groups: groups, bias: true, activation: activation)
        default:
            preconditionFailure("channel surgery: cannot add a bias to \(spec.typeName)")
        }
    }

    /// Every parameter and buffer under its saved-model name.
    static func namedTensors(of network: Network) -> [(String, Tensor)] {
        network.namedParameters.map { ($0.name, $0.parameter.value) } + network.namedBuffers.map { ($0.name, $0.tensor) }
    }
}
