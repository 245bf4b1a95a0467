import NeuralNetwork
import Tensors
import Testing

@Suite("Network")
struct NetworkTests {
    static let specJSON = """
        {"input_shape":[4],"layers":[{"type":"dense","units":8,"activation":"relu"},{"type":"dropout","rate":0.2},{"type":"dense","units":3}]}
        """

    func makeNetwork(seed: UInt64) throws -> Network {
        let (spec, issues) = try parseModel(Self.specJSON)
        #expect(issues.isEmpty, "\(issues)")
        return Network(spec: try #require(spec), seed: seed)
    }

    @Test("network names its parameters layers.<index>.<name> in layer order, with torch's shapes")
    func parameterNames() throws {
        let network = try makeNetwork(seed: 1)
        #expect(network.namedParameters.map(\.name) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"])
        #expect(network.namedParameters.map(\.parameter.shape) == [[8, 4], [8], [3, 8], [3]])
        #expect(network.parameterCount == 8 * 4 + 8 + 3 * 8 + 3)
        #expect(network.outputShape == [3])
        #expect(network.layers.count == 3)
        #expect(network.layers[1] is Dropout)
        #expect((network.layers[0] as? Dense)?.activation == .relu)
        #expect((network.layers[2] as? Dense)?.activation == .linear)
        #expect(network.flopsPerSample == 2 * (4 * 8 + 8 * 3))
    }

    @Test("the same seed builds the same weights; another seed builds others")
    func seededInitialization() throws {
        let a = try makeNetwork(seed: 7)
        let b = try makeNetwork(seed: 7)
        let c = try makeNetwork(seed: 8)
        #expect(a.parameters.map(\.value.array) == b.parameters.map(\.value.array))
        #expect(a.parameters.map(\.value.array) != c.parameters.map(\.value.array))
    }

    @Test("evaluation-mode forward is deterministic and ignores dropout")
    func evaluationIsDeterministic() throws {
        let network = try makeNetwork(seed: 3)
        var generator = SeededGenerator(seed: 4)
        let x = randomTensor([5, 4], generator: &generator)
        let first = network.forward(x, isTraining: false).array
        _ = network.forward(x, isTraining: true)  // advances the dropout stream
        let second = network.forward(x, isTraining: false).array
        #expect(first == second)
        #expect(first.count == 15)

        // Without dropout the same layers compute the same thing by hand: dense → relu → dense.
        let hidden = network.layers[0].forward(x, isTraining: false)
        let manual = network.layers[2].forward(hidden, isTraining: false).array
        #expect(manual == first)
    }

    @Test("training-mode forward draws dropout masks from the seeded dropout stream")
    func trainingUsesSeededDropout() throws {
        var generator = SeededGenerator(seed: 5)
        let x = randomTensor([16, 4], generator: &generator)
        let a = try makeNetwork(seed: 9)
        let b = try makeNetwork(seed: 9)
        let trainA = a.forward(x, isTraining: true).array
        #expect(trainA == b.forward(x, isTraining: true).array)
        #expect(trainA != a.forward(x, isTraining: false).array)
    }

    @Test("whole-network parameter gradients with cross-entropy match central differences")
    func gradientCheck() throws {
        let loss = LossFunction(spec: .crossEntropy(labelSmoothing: 0.1, classWeights: nil))
        let targets: [Int32] = [0, 2, 1, 1, 0, 2]
        // Redraw until every hidden pre-activation is ≥ 0.1 from relu's kink: a step of 1e-2 in a
        // first-layer weight or bias moves it by at most ~0.02 here.
        var attempt: UInt64 = 0
        while true {
            attempt += 1
            try #require(attempt < 100, "no kink-free draw found")
            let network = try makeNetwork(seed: attempt)
            var generator = SeededGenerator(seed: attempt, purpose: "input")
            let x = randomTensor([6, 4], generator: &generator)
            let first = try #require(network.layers[0] as? Dense)
            guard preActivations(first, x).allSatisfy({ abs($0) >= 0.1 }) else { continue }

            let dropout = try #require(network.layers[1] as? Dropout)
            let dropoutSeed = SeededGenerator(seed: attempt, purpose: "dropout.1")
            func lossValue() -> Double {
                dropout.generator = dropoutSeed  // replay the same mask on every forward
                return loss(network.forward(x, isTraining: true), .classes(targets)).value
            }
            network.zeroGradients()
            dropout.generator = dropoutSeed
            let output = network.forward(x, isTraining: true)
            let outputGradient = loss(output, .classes(targets)).gradient
            network.backward(outputGradient)
            let analytic = network.namedParameters.map { ($0.name, $0.parameter.gradient.array) }

            var errors: [(String, Double)] = []
            for ((name, gradient), parameter) in zip(analytic, network.parameters) {
                #expect(gradient.contains { $0 != 0 }, "\(name) has a gradient")
                let error = gradientError(analytic: gradient, numeric: numericalGradient(of: parameter.value, loss: lossValue))
                #expect(error <= gradientCheckTolerance, "\(name): relative error \(error)")
                errors.append((name, error))
            }
            reportErrors("gradient check network + cross_entropy", errors)
            return
        }
    }

    @Test("copying parameters makes two networks compute the same outputs")
    func copyParameters() throws {
        let a = try makeNetwork(seed: 1)
        let b = try makeNetwork(seed: 2)
        b.copyParameters(from: a)
        var generator = SeededGenerator(seed: 3)
        let x = randomTensor([2, 4], generator: &generator)
        #expect(a.forward(x, isTraining: false).array == b.forward(x, isTraining: false).array)
    }

    @Test("zeroGradients clears every parameter gradient")
    func zeroGradients() throws {
        let network = try makeNetwork(seed: 1)
        var generator = SeededGenerator(seed: 2)
        _ = network.forward(randomTensor([3, 4], generator: &generator), isTraining: true)
        network.backward(Tensor(shape: [3, 3], repeating: 1))
        #expect(network.parameters.contains { $0.gradient.array.contains { $0 != 0 } })
        network.zeroGradients()
        #expect(network.parameters.allSatisfy { $0.gradient.array.allSatisfy { $0 == 0 } })
    }
}
