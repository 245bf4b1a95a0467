import Compression
import NeuralNetwork
import Tensors
import Testing

@Suite("Channel surgery")
struct ChannelSurgeryTests {
    // MARK: - Which layers are prunable

    @Test("an MLP's hidden dense layers are prunable, the output layer is not")
    func prunableDenseLayers() {
        let mlp = Network(spec: ModelSpec(inputShape: [4], layers: [
            .dense(units: 8, activation: .relu, bias: true),
            .dense(units: 6, activation: .relu, bias: true),
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 1)
        #expect(ChannelSurgery.prunableLayers(of: mlp) == [0, 1])
        #expect(ChannelSurgery.channelCount(of: mlp, layer: 0) == 8)
        #expect(ChannelSurgery.channelCount(of: mlp, layer: 1) == 6)

        let withLayersBetween = Network(spec: ModelSpec(inputShape: [4], layers: [
            .dense(units: 8, activation: .linear, bias: true),
            .activation(.relu),
            .dropout(rate: 0.2),
            .batchNorm,
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 1)
        #expect(ChannelSurgery.prunableLayers(of: withLayersBetween) == [0])
    }

    @Test("a CNN's convolutions and first dense layer are prunable through batch norm, pooling and flatten")
    func prunableConvolutions() {
        #expect(ChannelSurgery.prunableLayers(of: Self.makeCNN(seed: 1)) == [0, 4, 7])
        #expect(ChannelSurgery.channelCount(of: Self.makeCNN(seed: 1), layer: 4) == 5)
    }

    @Test("a grouped or depthwise convolution is not prunable, nor a convolution that feeds one")
    func groupedConvolutionsAreNotPrunable() {
        let network = Network(spec: ModelSpec(inputShape: [4, 6, 6], layers: [
            .conv2d(filters: 8, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .relu),
            .conv2d(filters: 8, kernel: .square(3), stride: .square(1), padding: .same, groups: 2, bias: true, activation: .relu),
            .depthwiseConv2d(kernel: .square(3), stride: .square(1), padding: .same, depthMultiplier: 1, bias: true, activation: .relu),
            .conv2d(filters: 6, kernel: .square(1), stride: .square(1), padding: .valid, groups: 1, bias: true, activation: .relu),
            .flatten,
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 1)
        #expect(ChannelSurgery.prunableLayers(of: network) == [3])
    }

    @Test("a convolution feeding a separable convolution is not prunable")
    func separableConsumerIsNotPrunable() {
        let network = Network(spec: ModelSpec(inputShape: [3, 6, 6], layers: [
            .conv2d(filters: 4, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .relu),
            .separableConv2d(filters: 6, kernel: .square(3), stride: .square(1), padding: .same),
            .globalAvgPool2d,
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 1)
        #expect(ChannelSurgery.prunableLayers(of: network).isEmpty)
    }

    // MARK: - Shrinking computes what the silenced original computes

    @Test("shrinking an MLP with silenced units computes the same outputs with fewer parameters")
    func shrinkMLP() {
        let network = Network(spec: ModelSpec(inputShape: [4], layers: [
            .dense(units: 8, activation: .relu, bias: true),
            .dropout(rate: 0.3),
            .dense(units: 6, activation: .tanh, bias: true),
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 42)
        #expect(network.parameterCount == (8 * 4 + 8) + (6 * 8 + 6) + (3 * 6 + 3))
        let keeping = [0: [0, 2, 3, 5, 7], 2: [1, 2, 4]]
        var generator = SeededGenerator(seed: 5)
        let x = Self.randomTensor([10, 4], generator: &generator)
        let before = network.forward(x, isTraining: false).array
        Self.silence(network, keeping: keeping)
        let expected = network.forward(x, isTraining: false).array
        #expect(Self.maxDifference(before, expected) > 1e-3, "the silenced units must matter, or the test proves nothing")

        let shrunk = ChannelSurgery.shrink(network, keeping: keeping)
        #expect(shrunk.spec.layers[0] == .dense(units: 5, activation: .relu, bias: true))
        #expect(shrunk.spec.layers[2] == .dense(units: 3, activation: .tanh, bias: true))
        #expect(shrunk.namedParameters.map(\.parameter.shape) == [[5, 4], [5], [3, 5], [3], [3, 3], [3]])
        #expect(shrunk.parameterCount == (5 * 4 + 5) + (3 * 5 + 3) + (3 * 3 + 3))
        #expect(Self.maxDifference(shrunk.forward(x, isTraining: false).array, expected) <= 1e-5)
    }

    @Test("shrinking a CNN keeps batch norm statistics and flatten blocks: same inference outputs")
    func shrinkCNN() {
        let network = Self.makeCNN(seed: 42)
        var generator = SeededGenerator(seed: 6)
        let batchNorm = network.layers[1] as! BatchNorm
        Self.randomizeStatistics(batchNorm, generator: &generator)
        let keeping = [0: [1, 2, 4], 4: [0, 3, 4], 7: [0, 1, 3, 5, 6]]
        let x = Self.randomTensor([4, 3, 8, 8], generator: &generator)
        Self.silence(network, keeping: keeping)
        let expected = network.forward(x, isTraining: false).array

        let shrunk = ChannelSurgery.shrink(network, keeping: keeping)
        #expect(shrunk.layers.map(\.outputShape) == [[3, 8, 8], [3, 8, 8], [3, 8, 8], [3, 4, 4], [3, 4, 4], [3, 4, 4], [48], [5], [3]])
        let conv0 = 3 * 3 * 9 + 3, norm = 2 * 3, conv4 = 3 * 3 * 9 + 3, dense7 = 5 * 48 + 5, dense8 = 3 * 5 + 3
        #expect(shrunk.parameterCount == conv0 + norm + conv4 + dense7 + dense8)
        #expect(network.parameterCount == (6 * 3 * 9 + 6) + 2 * 6 + (5 * 6 * 9 + 5) + (7 * 80 + 7) + (3 * 7 + 3))
        let shrunkNorm = shrunk.layers[1] as! BatchNorm
        #expect(shrunkNorm.runningMean.array == [1, 2, 4].map { batchNorm.runningMean[$0] })
        #expect(shrunkNorm.runningVar.array == [1, 2, 4].map { batchNorm.runningVar[$0] })
        #expect(Self.maxDifference(shrunk.forward(x, isTraining: false).array, expected) <= 1e-5)
    }

    @Test("a batch norm after flatten loses each removed channel's block; zeroRemovedChannels silences exactly that")
    func batchNormAfterFlatten() {
        let network = Network(spec: ModelSpec(inputShape: [2, 4, 4], layers: [
            .conv2d(filters: 3, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .linear),
            .flatten,
            .batchNorm,
            .activation(.relu),
            .dense(units: 2, activation: .linear, bias: true),
        ]), seed: 42)
        #expect(ChannelSurgery.prunableLayers(of: network) == [0])
        var generator = SeededGenerator(seed: 7)
        let batchNorm = network.layers[2] as! BatchNorm
        Self.randomizeStatistics(batchNorm, generator: &generator)
        let normWeight = batchNorm.weight.value.array
        let convolution = network.layers[0] as! Conv2D
        let convolutionWeight = convolution.weight.value.array

        ChannelSurgery.zeroRemovedChannels(of: network, keeping: [0: [0, 2]])
        // Channel 1 is filter 1 (18 weights) and features 16..<32 of the flattened [3, 4, 4].
        #expect(convolution.weight.value.array == convolutionWeight.enumerated().map { 18..<36 ~= $0.offset ? 0 : $0.element })
        #expect(convolution.bias!.value[1] == 0)
        #expect(batchNorm.weight.value.array == normWeight.enumerated().map { 16..<32 ~= $0.offset ? 0 : $0.element })
        #expect(batchNorm.bias.value.array[16..<32].allSatisfy { $0 == 0 })

        let x = Self.randomTensor([3, 2, 4, 4], generator: &generator)
        let expected = network.forward(x, isTraining: false).array
        let shrunk = ChannelSurgery.shrink(network, keeping: [0: [0, 2]])
        let shrunkNorm = shrunk.layers[2] as! BatchNorm
        #expect(shrunkNorm.runningMean.array == Array(batchNorm.runningMean.array[0..<16] + batchNorm.runningMean.array[32..<48]))
        #expect(Self.maxDifference(shrunk.forward(x, isTraining: false).array, expected) <= 1e-5)
    }

    @Test("a removed sigmoid unit's constant output is folded into the next dense layer's bias")
    func sigmoidFolding() {
        let fused = Network(spec: ModelSpec(inputShape: [4], layers: [
            .dense(units: 6, activation: .sigmoid, bias: true),
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 42)
        let separate = Network(spec: ModelSpec(inputShape: [4], layers: [
            .dense(units: 6, activation: .linear, bias: true),
            .activation(.sigmoid),
            .dropout(rate: 0.3),
            .dense(units: 3, activation: .linear, bias: false),
        ]), seed: 43)
        var generator = SeededGenerator(seed: 8)
        let x = Self.randomTensor([7, 4], generator: &generator)
        for (network, keeping) in [(fused, [0: [0, 3, 4]]), (separate, [0: [1, 2]])] {
            Self.silence(network, keeping: keeping)
            let expected = network.forward(x, isTraining: false).array
            let shrunk = ChannelSurgery.shrink(network, keeping: keeping)
            #expect(Self.maxDifference(shrunk.forward(x, isTraining: false).array, expected) <= 1e-5)
        }
        // The bias-free consumer got a bias to hold the fold.
        let shrunk = ChannelSurgery.shrink(separate, keeping: [0: [1, 2]])
        #expect(shrunk.spec.layers[3] == .dense(units: 3, activation: .linear, bias: true))
    }

    @Test("shrink copies every tensor it does not cut bit for bit, and cuts by selection only")
    func untouchedTensorsAreIdentical() {
        let network = Network(spec: ModelSpec(inputShape: [3, 6, 6], layers: [
            .conv2d(filters: 6, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .relu),
            .batchNorm,
            .conv2d(filters: 5, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .relu),
            .separableConv2d(filters: 4, kernel: .square(3), stride: .square(1), padding: .same),
            .globalAvgPool2d,
            .dense(units: 8, activation: .relu, bias: true),
            .batchNorm,
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: 42)
        #expect(ChannelSurgery.prunableLayers(of: network) == [0, 5])
        var generator = SeededGenerator(seed: 9)
        // Training forwards move every batch norm's running statistics (also inside the separable block) off their defaults.
        for _ in 0..<2 { _ = network.forward(Self.randomTensor([4, 3, 6, 6], generator: &generator), isTraining: true) }
        let kept = [0, 2, 3, 5]
        let shrunk = ChannelSurgery.shrink(network, keeping: [0: kept])

        func slice(_ tensor: Tensor, from start: Int, count: Int) -> [Float] { Array(tensor.values[start..<(start + count)]) }
        let originals = Dictionary(uniqueKeysWithValues: Self.namedTensors(of: network))
        let copies = Self.namedTensors(of: shrunk)
        #expect(copies.map(\.name) == Self.namedTensors(of: network).map(\.name))
        for (name, tensor) in copies {
            let original = originals[name]!
            let expected: [Float]
            switch name {
            case "layers.0.weight": expected = kept.flatMap { slice(original, from: $0 * 27, count: 27) }
            case "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.1.running_mean", "layers.1.running_var":
                expected = kept.map { original[$0] }
            case "layers.2.weight":  // [5, 6, 3, 3] → [5, 4, 3, 3]: each filter's kept input-channel slices
                expected = (0..<5).flatMap { filter in kept.flatMap { slice(original, from: filter * 54 + $0 * 9, count: 9) } }
            default: expected = original.array
            }
            #expect(tensor.array.map(\.bitPattern) == expected.map(\.bitPattern), "\(name)")
        }
        #expect(originals["layers.1.num_batches_tracked"]!.array == [2])
    }

    // MARK: - Helpers

    /// conv2d → batch_norm → relu → max_pool → conv2d → relu → flatten → dense → dense on [3, 8, 8].
    static func makeCNN(seed: UInt64) -> Network {
        Network(spec: ModelSpec(inputShape: [3, 8, 8], layers: [
            .conv2d(filters: 6, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .linear),
            .batchNorm,
            .activation(.relu),
            .maxPool2d(kernel: .square(2), stride: .square(2)),
            .conv2d(filters: 5, kernel: .square(3), stride: .square(1), padding: .same, groups: 1, bias: true, activation: .linear),
            .activation(.relu),
            .flatten,
            .dense(units: 7, activation: .relu, bias: true),
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: seed)
    }

    /// Zeroes, by hand, what masked fine-tuning zeroes before shrinking: the removed rows of each producer's weight
    /// and bias, and the removed entries of the batch norms right after it (independent of `zeroRemovedChannels`).
    static func silence(_ network: Network, keeping: [Int: [Int]]) {
        for (index, kept) in keeping {
            var tensors: [Tensor] = []
            switch network.layers[index] {
            case let dense as Dense: tensors = [dense.weight.value] + (dense.bias.map { [$0.value] } ?? [])
            case let convolution as Conv2D: tensors = [convolution.weight.value] + (convolution.bias.map { [$0.value] } ?? [])
            default: Issue.record("layer \(index) is not dense or conv2d")
            }
            var next = index + 1
            while next < network.layers.count, !(network.layers[next] is Dense || network.layers[next] is Conv2D) {
                if let batchNorm = network.layers[next] as? BatchNorm { tensors += [batchNorm.weight.value, batchNorm.bias.value] }
                next += 1
            }
            let channels = tensors[0].shape[0]
            for tensor in tensors {
                let blockSize = tensor.count / channels
                for channel in 0..<channels where !kept.contains(channel) {
                    for i in (channel * blockSize)..<((channel + 1) * blockSize) { tensor[i] = 0 }
                }
            }
        }
    }

    static func randomizeStatistics(_ batchNorm: BatchNorm, generator: inout SeededGenerator) {
        for i in 0..<batchNorm.weight.count {
            batchNorm.weight.value[i] = generator.uniform(0.5, 1.5)
            batchNorm.bias.value[i] = generator.uniform(-0.5, 0.5)
            batchNorm.runningMean[i] = generator.uniform(-0.5, 0.5)
            batchNorm.runningVar[i] = generator.uniform(0.5, 2)
        }
    }

    static func randomTensor(_ shape: [Int], generator: inout SeededGenerator) -> Tensor {
        let tensor = Tensor(shape: shape)
        for i in 0..<tensor.count { tensor[i] = generator.uniform(-2, 2) }
        return tensor
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    static func namedTensors(of network: Network) -> [(name: String, tensor: Tensor)] {
        network.namedParameters.map { ($0.name, $0.parameter.value) } + network.namedBuffers.map { ($0.name, $0.tensor) }
    }
}
