import Compression
import NeuralNetwork
import Tensors
import Testing

@Suite("Polynomial pruning schedule")
struct PolynomialPruningScheduleTests {
    @Test("sparsity follows s_f + (s_i − s_f)(1 − progress)^power between the ends and holds outside them")
    func followsZhuAndGupta() {
        let schedule = PolynomialPruningSchedule(beginEpoch: 2, endEpoch: 10, frequency: 2, initialSparsity: 0.1, finalSparsity: 0.9, power: 3)
        #expect(schedule.sparsity(atEpoch: 0) == 0.1)
        #expect(schedule.sparsity(atEpoch: 2) == 0.1)
        #expect(abs(schedule.sparsity(atEpoch: 6) - (0.9 + (0.1 - 0.9) * 0.125)) < 1e-12)
        #expect(schedule.sparsity(atEpoch: 10) == 0.9)
        #expect(schedule.sparsity(atEpoch: 20) == 0.9)
        // Rising fast early, slowly late.
        let steps = (2...10).map { schedule.sparsity(atEpoch: $0) }
        let increments = zip(steps.dropFirst(), steps).map { $0 - $1 }
        #expect(increments.allSatisfy { $0 >= 0 })
        #expect(increments.first! > increments.last!)
    }

    @Test("pruning happens on the frequency grid and always at the end epoch")
    func prunesOnItsGrid() {
        let schedule = PolynomialPruningSchedule(beginEpoch: 1, endEpoch: 8, frequency: 3, finalSparsity: 0.5)
        #expect((0...10).filter(schedule.prunes(atEpoch:)) == [1, 4, 7, 8])
        let oneShot = PolynomialPruningSchedule(beginEpoch: 3, endEpoch: 3, finalSparsity: 0.5)
        #expect((0...5).filter(oneShot.prunes(atEpoch:)) == [3])
        #expect(oneShot.sparsity(atEpoch: 3) == 0.5)
    }

    @Test("the incremental amount turns a sparsity step into a fraction of the surviving weights")
    func incrementalAmountComposes() {
        let amount = PolynomialPruningSchedule.incrementalAmount(from: 0.5, to: 0.8)
        #expect(abs(amount - 0.6) < 1e-12)
        // 50 % pruned, then 60 % of the remaining 50 %: 80 % in all.
        #expect(abs(0.5 + 0.5 * amount - 0.8) < 1e-12)
        #expect(PolynomialPruningSchedule.incrementalAmount(from: 0.8, to: 0.5) == 0)
    }
}

@Suite("Fake quantization in training and inference")
struct QuantizedTrainingTests {
    static func mlp(seed: UInt64 = 3) -> Network {
        Network(spec: ModelSpec(inputShape: [5], layers: [
            .dense(units: 7, activation: .relu, bias: true),
            .dense(units: 3, activation: .linear, bias: true),
        ]), seed: seed)
    }

    @Test("weight fake-quantization puts grid values in place for the pass and brings the float weights back, masking clamped gradients")
    func weightFakeQuantizerRoundTrips() {
        let network = Self.mlp()
        let weight = network.parameters[0]
        // The largest magnitude positive: its code rounds to +2, past the top of the 2-bit range [−2, 1].
        weight.value[0] = 2 * (weight.value.array.map { abs($0) }.max() ?? 1)
        let floats = weight.value.array
        let quantizer = WeightFakeQuantizer(quantization: WeightQuantization(bits: 2, scheme: .symmetric, granularity: .perTensor), network: network)
        quantizer.quantizeWeights()
        let grid = WeightQuantization(bits: 2, scheme: .symmetric, granularity: .perTensor)
            .parameters(for: floats.withUnsafeBufferPointer { $0 }, shape: weight.shape)
        #expect(weight.value.array == FakeQuantization.apply(floats, parameters: grid))
        #expect(Set(weight.value.array).count <= 4)
        for i in 0..<weight.count { weight.gradient[i] = 1 }
        quantizer.restoreWeights()
        #expect(weight.value.array == floats)
        // Symmetric 2-bit covers [−2s, 1s]: the largest positive weights are clamped, so their gradient stops.
        let codes = floats.map { ($0 / grid.scales[0]).rounded(.toNearestOrEven) }
        for i in 0..<weight.count {
            let clamped = codes[i] < Float(grid.quantMin) || codes[i] > Float(grid.quantMax)
            #expect(weight.gradient[i] == (clamped ? 0 : 1), "weight \(i)")
        }
        #expect(codes.contains { $0 > Float(grid.quantMax) })
    }

    @Test("activation quantizers observe while calibrating, then round inputs to 8 bits and pass gradient straight through")
    func activationQuantizerCalibratesThenQuantizes() {
        let network = Self.mlp()
        let quantizers = network.installActivationQuantizers()
        #expect(quantizers.keys.sorted() == [0, 1])
        var generator = SeededGenerator(seed: 9, purpose: "test")
        let input = Tensor(shape: [4, 5], values: (0..<20).map { _ in generator.normal() })
        let plain = Self.mlp()
        // Calibrating changes nothing.
        #expect(network.forward(input, isTraining: false).array == plain.forward(input, isTraining: false).array)
        for quantizer in quantizers.values { quantizer.finishCalibration() }
        let grid = try! #require(quantizers[0]?.grid)
        #expect(grid.quantMin == 0 && grid.quantMax == 255)
        let quantizedOutput = network.forward(input, isTraining: false).array
        let reference = Self.mlp()
        let firstInput = Tensor(shape: [4, 5], values: FakeQuantization.apply(input.array, parameters: grid))
        let hidden = reference.layers[0].forward(firstInput, isTraining: false)
        let secondInput = Tensor(shape: hidden.shape, values: FakeQuantization.apply(hidden.array, parameters: try! #require(quantizers[1]?.grid)))
        let expected = reference.layers[1].forward(secondInput, isTraining: false).array
        for (a, b) in zip(quantizedOutput, expected) { #expect(abs(a - b) < 1e-6) }
        // Backward passes through the quantizers (inside the calibrated range nothing is clamped).
        _ = network.forward(input, isTraining: true)
        let inputGradient = network.backward(Tensor(shape: [4, 3], values: [Float](repeating: 1, count: 12)), returnInputGradient: true)
        #expect(inputGradient?.shape == [4, 5])
        #expect(inputGradient?.array.contains { $0 != 0 } == true)
    }

    @Test("removing the last input transform restores the plain forward pass")
    func transformsCanBeRemoved() {
        let network = Self.mlp()
        network.installActivationQuantizers()
        network.setInputTransform(nil, before: 0)
        network.setInputTransform(nil, before: 1)
        #expect(network.inputTransforms.isEmpty)
        let input = Tensor(shape: [2, 5], values: (0..<10).map { Float($0) / 7 })
        #expect(network.forward(input, isTraining: false).array == Self.mlp().forward(input, isTraining: false).array)
    }

    @Test("encoded weights dequantize to their grid values at every width, pruned zeros staying exactly zero")
    func encodingRoundTrips() {
        for bits in [8, 4, 2, 1] {
            for scheme in [QuantizationScheme.symmetric, .affine] {
                let network = Self.mlp(seed: UInt64(bits))
                let weight = network.parameters[0]
                weight.value[0] = 0
                weight.value[6] = 0
                let quantization = WeightQuantization(bits: bits, scheme: scheme, granularity: .perChannel)
                let encoded = quantization.encode(weight)
                #expect(encoded.packed.count == (weight.count * bits + 7) / 8)
                let values = encoded.dequantized()
                if bits > 1 {
                    #expect(values[0] == 0 && values[6] == 0, "bits \(bits) \(scheme)")
                    let grid = quantization.parameters(for: weight.value.array.withUnsafeBufferPointer { $0 }, shape: weight.shape)
                    #expect(values == FakeQuantization.apply(weight.value.array, parameters: grid))
                } else {
                    #expect(values == BinaryQuantization.binarize(weight.value.array, rows: weight.shape[0]))
                }
            }
        }
    }
}
