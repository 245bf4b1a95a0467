import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

@Suite("Dense")
struct DenseTests {
    @Test("dense matches torch's Linear forward, input gradient and parameter gradients")
    func matchesTorchLinear() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "linear" }
        try #require(!cases.isEmpty, "layers.json has no linear case")
        for fixture in cases {
            let params = fixture.object("params")
            let weight = try params.tensor("weight")
            let units = weight.shape[0]
            let inputCount = weight.shape[1]
            var generator = SeededGenerator(seed: 1)
            let dense = Dense(inputCount: inputCount, units: units, activation: .linear,
                              hasBias: params["bias"] != nil, generator: &generator)
            dense.weight.value.load(weight)
            if let bias = dense.bias { bias.value.load(try params.tensor("bias")) }
            for parameter in dense.parameters { parameter.zeroGradient() }

            let x = Tensor(try fixture.tensor("input"))
            let y = dense.forward(x, isTraining: true)
            let dy = Tensor(try fixture.tensor("output_grad"))
            let dx = try #require(dense.backward(dy, needsInputGradient: true))

            var errors: [(String, Double)] = []
            for (name, actual, expected) in [
                ("output", y, try fixture.tensor("output")),
                ("input_grad", dx, try fixture.tensor("input_grad")),
            ] {
                #expect(actual.shape == expected.shape, "\(name) shape")
                let error = maxAbsError(actual.array, expected.data)
                #expect(error <= layerTolerance * scaleOf(expected.data), "\(name): max abs error \(error)")
                errors.append((name, error))
            }
            let expectedGrads = fixture.object("param_grads")
            for parameter in dense.parameters {
                let expected = try expectedGrads.tensor(parameter.name)
                #expect(parameter.shape == expected.shape, "\(parameter.name) shape")
                let error = maxAbsError(parameter.gradient.array, expected.data)
                #expect(error <= layerTolerance * scaleOf(expected.data), "grad \(parameter.name): max abs error \(error)")
                errors.append(("grad \(parameter.name)", error))
            }
            reportErrors("layers.json linear", errors)
        }
    }

    @Test("dense with a fused activation equals dense(linear) followed by the activation layer",
          arguments: ActivationFunction.allCases)
    func fusedActivationEqualsSeparateLayers(function: ActivationFunction) throws {
        var generator = SeededGenerator(seed: 11)
        let fused = Dense(inputCount: 5, units: 6, activation: function, generator: &generator)
        var sameGenerator = SeededGenerator(seed: 11)
        let linear = Dense(inputCount: 5, units: 6, activation: .linear, generator: &sameGenerator)
        let activation = ActivationLayer(function, inputShape: [6])
        #expect(fused.weight.value.array == linear.weight.value.array)

        var data = SeededGenerator(seed: 12)
        let x = randomTensor([4, 5], in: -3...3, generator: &data)
        let dy = randomTensor([4, 6], generator: &data)

        let fusedOutput = fused.forward(x, isTraining: true).array
        let separateOutput = activation.forward(linear.forward(x, isTraining: true), isTraining: true).array
        #expect(maxAbsError(fusedOutput, separateOutput.map(Double.init)) <= 1e-6)

        let fusedInputGradient = try #require(fused.backward(dy, needsInputGradient: true)).array
        let activationGradient = try #require(activation.backward(dy, needsInputGradient: true))
        let separateInputGradient = try #require(linear.backward(activationGradient, needsInputGradient: true)).array
        #expect(maxAbsError(fusedInputGradient, separateInputGradient.map(Double.init)) <= 1e-6)
        for (a, b) in zip(fused.parameters, linear.parameters) {
            #expect(maxAbsError(a.gradient.array, b.gradient.array.map(Double.init)) <= 1e-6, "grad \(a.name)")
        }
    }

    @Test("dense gradients match central differences for every activation", arguments: ActivationFunction.allCases)
    func gradientCheck(function: ActivationFunction) throws {
        // Redraw until every pre-activation z is ≥ 0.1 from a kink of f: a step of h = 1e-2 in x, W or b
        // moves z by at most ~0.03 here, so no central difference straddles a kink.
        var attempt: UInt64 = 0
        while true {
            attempt += 1
            try #require(attempt < 100, "no kink-free draw found")
            var generator = SeededGenerator(seed: attempt, purpose: "dense-check")
            let dense = Dense(inputCount: 5, units: 4, activation: function, generator: &generator)
            let x = randomTensor([3, 5], in: -1.5...1.5, generator: &generator)
            let z = preActivations(dense, x)
            guard z.allSatisfy({ function.isSmooth(at: $0, margin: 0.1) }) else { continue }

            let errors = checkLayerGradients(dense, input: x, seed: attempt)
            #expect(Set(errors.keys) == ["input", "weight", "bias"])
            let sorted = errors.sorted { $0.key < $1.key }
            for (name, error) in sorted {
                #expect(error <= gradientCheckTolerance, "\(function) \(name): relative error \(error)")
            }
            reportErrors("gradient check dense(\(function.rawValue))", sorted.map { ($0.key, $0.value) })
            return
        }
    }

    @Test("dense gradients accumulate across backward calls")
    func gradientsAccumulate() throws {
        var generator = SeededGenerator(seed: 3)
        let dense = Dense(inputCount: 3, units: 2, activation: .tanh, generator: &generator)
        let x = randomTensor([4, 3], generator: &generator)
        let dy = randomTensor([4, 2], generator: &generator)
        for parameter in dense.parameters { parameter.zeroGradient() }
        _ = dense.forward(x, isTraining: true)
        _ = dense.backward(dy, needsInputGradient: false)
        let once = dense.parameters.map(\.gradient.array)
        _ = dense.backward(dy, needsInputGradient: false)
        for (parameter, single) in zip(dense.parameters, once) {
            #expect(maxAbsError(parameter.gradient.array, single.map { 2 * Double($0) }) <= 1e-6, "\(parameter.name)")
        }
    }

    @Test("dense without input gradient returns nil but still fills parameter gradients")
    func noInputGradient() throws {
        var generator = SeededGenerator(seed: 4)
        let dense = Dense(inputCount: 3, units: 2, generator: &generator)
        let x = randomTensor([2, 3], generator: &generator)
        _ = dense.forward(x, isTraining: true)
        #expect(dense.backward(Tensor(shape: [2, 2], repeating: 1), needsInputGradient: false) == nil)
        #expect(dense.weight.gradient.array.contains { $0 != 0 })
        #expect(dense.bias?.gradient.array == [2, 2])
    }

    @Test("dense without bias has only a weight and computes x·Wᵀ")
    func withoutBias() throws {
        var generator = SeededGenerator(seed: 5)
        let dense = Dense(inputCount: 2, units: 2, hasBias: false, generator: &generator)
        #expect(dense.parameters.map(\.name) == ["weight"])
        dense.weight.value.load([1, 2, 3, 4])
        let y = dense.forward(Tensor(shape: [1, 2], values: [1, -1]), isTraining: false)
        #expect(y.array == [-1, -1])
    }

    @Test("dense reuses its output buffer when a smaller batch follows a larger one")
    func reusesBuffers() throws {
        var generator = SeededGenerator(seed: 6)
        let dense = Dense(inputCount: 3, units: 2, activation: .relu, generator: &generator)
        let large = dense.forward(randomTensor([8, 3], generator: &generator), isTraining: true)
        let base = large.pointer
        let small = dense.forward(randomTensor([3, 3], generator: &generator), isTraining: true)
        #expect(small === large)
        #expect(small.pointer == base)
        #expect(small.shape == [3, 2])
    }

    @Test("dense initializes like torch's Linear: W, b uniform in ±1/√inputs, reproducibly")
    func initialization() {
        var first = SeededGenerator(seed: 9)
        var second = SeededGenerator(seed: 9)
        let a = Dense(inputCount: 16, units: 32, generator: &first)
        let b = Dense(inputCount: 16, units: 32, generator: &second)
        #expect(a.weight.value.array == b.weight.value.array)
        #expect(a.bias?.value.array == b.bias?.value.array)
        let bound: Float = 0.25
        #expect(a.weight.value.array.allSatisfy { abs($0) <= bound })
        #expect(a.bias!.value.array.allSatisfy { abs($0) <= bound })
        #expect(a.weight.shape == [32, 16])
        #expect(a.weight.isWeight && !a.bias!.isWeight)
    }
}
