import NeuralNetwork
import Tensors
import Testing

@Suite("Flatten")
struct FlattenTests {
    @Test("flatten keeps each sample's values in row-major order and restores the shape on the way back")
    func flattensAndRestores() throws {
        let flatten = Flatten(inputShape: [2, 2, 3])
        #expect(flatten.outputShape == [12])
        #expect(flatten.parameters.isEmpty)
        let x = Tensor(shape: [2, 2, 2, 3], values: (0..<24).map(Float.init))
        let y = flatten.forward(x, isTraining: true)
        #expect(y.shape == [2, 12])
        #expect(y.array == x.array)
        let dy = Tensor(shape: [2, 12], values: (0..<24).map { Float($0) * -1 })
        let dx = try #require(flatten.backward(dy, needsInputGradient: true))
        #expect(dx.shape == [2, 2, 2, 3])
        #expect(dx.array == dy.array)
        #expect(flatten.backward(dy, needsInputGradient: false) == nil)
    }

    @Test("flatten's gradient matches central differences")
    func gradientCheck() {
        let flatten = Flatten(inputShape: [3, 2, 2])
        var generator = SeededGenerator(seed: 1)
        let errors = checkLayerGradients(flatten, input: randomTensor([2, 3, 2, 2], generator: &generator), seed: 2)
        #expect(errors.keys.sorted() == ["input"])
        #expect(errors["input"]! <= gradientCheckTolerance)
    }

    @Test("flatten reuses its buffers when the batch size changes")
    func reusesBuffers() throws {
        let flatten = Flatten(inputShape: [2, 3])
        let large = flatten.forward(Tensor(shape: [4, 2, 3], repeating: 1), isTraining: true)
        let largeGradient = try #require(flatten.backward(Tensor(shape: [4, 6], repeating: 1), needsInputGradient: true))
        let y = flatten.forward(Tensor(shape: [1, 2, 3], repeating: 2), isTraining: true)
        let dx = try #require(flatten.backward(Tensor(shape: [1, 6], repeating: 3), needsInputGradient: true))
        #expect(y === large && dx === largeGradient)
        #expect(y.shape == [1, 6] && y.array == Array(repeating: 2, count: 6))
        #expect(dx.shape == [1, 2, 3] && dx.array == Array(repeating: 3, count: 6))
    }
}

@Suite("Reshape")
struct ReshapeTests {
    @Test("reshape gives each sample the new shape, inferring one −1, and restores the input shape backward")
    func reshapes() throws {
        let reshape = Reshape(inputShape: [12], shape: [3, -1])
        #expect(reshape.outputShape == [3, 4])
        let x = Tensor(shape: [2, 12], values: (0..<24).map(Float.init))
        let y = reshape.forward(x, isTraining: true)
        #expect(y.shape == [2, 3, 4])
        #expect(y.array == x.array)
        let dx = try #require(reshape.backward(Tensor(shape: [2, 3, 4], repeating: 7), needsInputGradient: true))
        #expect(dx.shape == [2, 12])
        #expect(dx.array == Array(repeating: 7, count: 24))
        #expect(Reshape(inputShape: [1, 8, 8], shape: [64]).outputShape == [64])
    }

    @Test("reshape refuses shapes whose element count differs, several −1 and non-positive sizes")
    func resolvedShapeProblems() throws {
        #expect(try Reshape.resolvedShape(inputShape: [2, 6], shape: [4, 3]).get() == [4, 3])
        #expect(try Reshape.resolvedShape(inputShape: [2, 6], shape: [-1, 2, 2]).get() == [3, 2, 2])
        func message(_ shape: [Int]) -> String? {
            if case .failure(let problem) = Reshape.resolvedShape(inputShape: [2, 6], shape: shape) { return problem.message }
            return nil
        }
        #expect(message([5, 2])?.contains("holds 10 values") == true)
        #expect(message([-1, 5])?.contains("cannot infer") == true)
        #expect(message([-1, -1])?.contains("at most one −1") == true)
        #expect(message([0, 12])?.contains("positive") == true)
        #expect(message([]) != nil)
    }

    @Test("reshape's gradient matches central differences")
    func gradientCheck() {
        let reshape = Reshape(inputShape: [2, 6], shape: [3, 4])
        var generator = SeededGenerator(seed: 3)
        let errors = checkLayerGradients(reshape, input: randomTensor([3, 2, 6], generator: &generator), seed: 4)
        #expect(errors["input"]! <= gradientCheckTolerance)
    }

    @Test("reshape reuses its buffers when the batch size changes")
    func reusesBuffers() throws {
        let reshape = Reshape(inputShape: [6], shape: [2, 3])
        let large = reshape.forward(Tensor(shape: [4, 6], repeating: 1), isTraining: true)
        let largeGradient = try #require(reshape.backward(Tensor(shape: [4, 2, 3], repeating: 1), needsInputGradient: true))
        let y = reshape.forward(Tensor(shape: [2, 6], repeating: 2), isTraining: true)
        let dx = try #require(reshape.backward(Tensor(shape: [2, 2, 3], repeating: 3), needsInputGradient: true))
        #expect(y === large && dx === largeGradient)
        #expect(y.shape == [2, 2, 3] && dx.shape == [2, 6])
    }
}
