import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

@Suite("Channel shuffle")
struct ChannelShuffleTests {
    @Test("channel shuffle matches torch's view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W) and its gradient")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "channel_shuffle" }
        try #require(!cases.isEmpty, "layers.json has no channel_shuffle case")
        for fixture in cases {
            let groups = try #require(fixture.object("config").int("groups"))
            let input = try fixture.tensor("input")
            let layer = ChannelShuffle(groups: groups, inputShape: Array(input.shape.dropFirst()))
            #expect(layer.parameters.isEmpty && layer.buffers.isEmpty)
            #expect(fixture.object("param_grads").isEmpty)
            let y = layer.forward(Tensor(input), isTraining: true)
            let dx = try #require(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: true))
            var errors: [(String, Double)] = []
            for (name, actual, expected) in [
                ("output", y, try fixture.tensor("output")),
                ("input_grad", dx, try fixture.tensor("input_grad")),
            ] {
                #expect(actual.shape == expected.shape, "\(name) shape")
                let error = maxAbsError(actual.array, expected.data)
                // A permutation moves values without arithmetic: the float32 copy is exact up to rounding the fixture.
                #expect(error <= layerTolerance * scaleOf(expected.data), "\(name): max abs error \(error)")
                errors.append((name, error))
            }
            reportErrors("layers.json channel_shuffle", errors)
        }
    }

    @Test("channel shuffle interleaves the groups: with 6 channels in 2 groups, channels 0 3 1 4 2 5")
    func interleaves() throws {
        let layer = ChannelShuffle(groups: 2, inputShape: [6, 1, 2])
        // Channel c holds 10c and 10c + 1 at its two positions; the batch's second sample is offset by 100.
        func values(channelOrder: [Int]) -> [Float] {
            var values: [Float] = []
            for n in 0..<2 {
                for c in channelOrder {
                    let base = Float(100 * n + 10 * c)
                    values += [base, base + 1]
                }
            }
            return values
        }
        let x = Tensor(shape: [2, 6, 1, 2], values: values(channelOrder: Array(0..<6)))
        let y = layer.forward(x, isTraining: false).array
        let expected = values(channelOrder: [0, 3, 1, 4, 2, 5])
        #expect(y == expected)
        #expect(layer.outputShape == [6, 1, 2])
        let three = ChannelShuffle(groups: 3, inputShape: [6])
        #expect(three.forward(Tensor(shape: [1, 6], values: [0, 1, 2, 3, 4, 5]), isTraining: false).array == [0, 2, 4, 1, 3, 5])
    }

    @Test("shuffling by g and then by C/g restores the channel order; one group or one channel per group is the identity")
    func inverse() throws {
        var generator = SeededGenerator(seed: 61)
        let x = randomTensor([3, 12, 2, 3], generator: &generator)
        for groups in [1, 2, 3, 4, 6, 12] {
            let forward = ChannelShuffle(groups: groups, inputShape: [12, 2, 3])
            let back = ChannelShuffle(groups: 12 / groups, inputShape: [12, 2, 3])
            let restored = back.forward(forward.forward(x, isTraining: true), isTraining: true)
            #expect(restored.array == x.array, "groups \(groups)")
        }
        for groups in [1, 12] {
            #expect(ChannelShuffle(groups: groups, inputShape: [12, 2, 3]).forward(x, isTraining: true).array == x.array)
        }
    }

    @Test("channel shuffle's input gradient matches central differences")
    func gradientCheck() throws {
        var generator = SeededGenerator(seed: 62, purpose: "channel-shuffle-check")
        let layer = ChannelShuffle(groups: 3, inputShape: [6, 2, 2])
        let x = randomTensor([2, 6, 2, 2], generator: &generator)
        let errors = checkLayerGradients(layer, input: x, seed: 63)
        #expect(Set(errors.keys) == ["input"])
        #expect(errors["input"]! <= gradientCheckTolerance, "relative error \(errors["input"]!)")
        reportErrors("gradient check channel_shuffle", [("input", errors["input"]!)])
    }

    @Test("channel shuffle returns no input gradient unless asked and reuses its buffers for a smaller batch")
    func buffers() throws {
        var generator = SeededGenerator(seed: 64)
        let layer = ChannelShuffle(groups: 2, inputShape: [4, 3, 3])
        let large = layer.forward(randomTensor([5, 4, 3, 3], generator: &generator), isTraining: true)
        let base = large.pointer
        let small = layer.forward(randomTensor([2, 4, 3, 3], generator: &generator), isTraining: true)
        #expect(small === large && small.pointer == base && small.shape == [2, 4, 3, 3])
        #expect(layer.backward(randomTensor([2, 4, 3, 3], generator: &generator), needsInputGradient: false) == nil)
    }

    @Test("channel shuffle refuses a channel count that the groups do not divide")
    func refusesIndivisibleChannels() async {
        await #expect(processExitsWith: .failure) {
            _ = ChannelShuffle(groups: 4, inputShape: [6, 2, 2])
        }
    }
}
