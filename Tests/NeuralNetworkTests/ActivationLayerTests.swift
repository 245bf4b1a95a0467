import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

/// Activation cases of `layers.json`: the fixture's layer name is the function's raw value.
let fixtureActivations: [ActivationFunction] = [.relu, .leaky_relu, .tanh, .sigmoid, .gelu, .relu6, .elu, .softplus, .silu]

@Suite("ActivationLayer")
struct ActivationLayerTests {
    @Test("activation layer matches torch's forward and input gradient", arguments: fixtureActivations)
    func matchesTorch(function: ActivationFunction) throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == function.rawValue }
        try #require(!cases.isEmpty, "layers.json has no \(function.rawValue) case")
        for fixture in cases {
            let config = fixture.object("config")
            let slope = Float(config.double("negative_slope") ?? 0.01)
            let x = Tensor(try fixture.tensor("input"))
            let layer = ActivationLayer(function, inputShape: Array(x.shape.dropFirst()), negativeSlope: slope)
            #expect(layer.parameters.isEmpty)
            let y = layer.forward(x, isTraining: true)
            let dx = try #require(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: true))

            var errors: [(String, Double)] = []
            for (name, actual, expected) in [
                ("output", y, try fixture.tensor("output")),
                ("input_grad", dx, try fixture.tensor("input_grad")),
            ] {
                #expect(actual.shape == expected.shape, "\(name) shape")
                let error = maxAbsError(actual.array, expected.data)
                #expect(error <= layerTolerance * scaleOf(expected.data), "\(function) \(name): max abs error \(error)")
                errors.append((name, error))
            }
            #expect((fixture.object("param_grads")).isEmpty)
            reportErrors("layers.json \(function.rawValue)", errors)
        }
    }

    @Test("activation layer's input gradient matches central differences", arguments: ActivationFunction.allCases)
    func gradientCheck(function: ActivationFunction) throws {
        var generator = SeededGenerator(seed: 21, purpose: function.rawValue)
        // relu6 over [−8, 8] to cover both flat parts; the rest over [−4, 4].
        let range: ClosedRange<Float> = function == .relu6 ? -8...8 : -4...4
        let x = randomTensor([4, 6], in: range, generator: &generator)
        // Move inputs that sit within 0.1 of a kink to 0.2 past it, so no difference straddles one.
        for i in 0..<x.count {
            for kink in function.kinks where abs(x[i] - kink) < 0.1 {
                x[i] = kink + (x[i] >= kink ? 0.2 : -0.2)
            }
        }
        let layer = ActivationLayer(function, inputShape: [6], negativeSlope: 0.2)
        let errors = checkLayerGradients(layer, input: x, seed: 22)
        #expect(Array(errors.keys) == ["input"])
        #expect(errors["input"]! <= gradientCheckTolerance, "\(function): relative error \(errors["input"]!)")
        reportErrors("gradient check activation(\(function.rawValue))", [("input", errors["input"]!)])
    }

    @Test("softplus switches to the identity above torch's threshold of 20, with gradient 1")
    func softplusThreshold() throws {
        let layer = ActivationLayer(.softplus, inputShape: [3])
        let y = layer.forward(Tensor(shape: [1, 3], values: [25, 19, -30]), isTraining: false)
        #expect(y[0] == 25)
        #expect(abs(y[1] - 19) < 1e-5)
        #expect(y[2] > 0 && y[2] < 1e-12)
        let dx = try #require(layer.backward(Tensor(shape: [1, 3], repeating: 1), needsInputGradient: true))
        #expect(dx[0] == 1)
    }

    @Test("activation layer keeps the input's shape, batch included")
    func keepsShape() throws {
        let layer = ActivationLayer(.gelu, inputShape: [2, 3])
        #expect(layer.outputShape == [2, 3])
        let y = layer.forward(Tensor(shape: [5, 2, 3], repeating: 1), isTraining: true)
        #expect(y.shape == [5, 2, 3])
        #expect(layer.backward(y, needsInputGradient: false) == nil)
    }
}
