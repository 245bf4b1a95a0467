import Foundation
import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

@Suite("Embedding")
struct EmbeddingTests {
    @Test("embedding matches torch's Embedding: looked-up rows and the weight gradient, repeated tokens accumulating")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "embedding" }
        try #require(!cases.isEmpty, "layers.json has no embedding case")
        for fixture in cases {
            let config = fixture.object("config")
            let indices = try #require(fixture["indices"] as? [[Int]], "indices")
            let rows = indices.count, length = indices[0].count
            var generator = SeededGenerator(seed: 1)
            let layer = Embedding(numEmbeddings: try #require(config.int("num_embeddings")), dim: try #require(config.int("dim")),
                                  inputShape: [length], generator: &generator)
            layer.weight.value.load(try fixture.object("params").tensor("weight"))
            layer.weight.zeroGradient()

            let x = Tensor(shape: [rows, length], values: indices.flatMap { $0.map(Float.init) })
            let y = layer.forward(x, isTraining: true)
            #expect(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: false) == nil)

            var errors: [(String, Double)] = []
            for (name, actual, expected) in [
                ("output", y, try fixture.tensor("output")),
                ("grad weight", layer.weight.gradient, try fixture.object("param_grads").tensor("weight")),
            ] {
                #expect(actual.shape == expected.shape, "\(name) shape \(actual.shape) vs \(expected.shape)")
                let error = maxAbsError(actual.array, expected.data)
                #expect(error <= layerTolerance * scaleOf(expected.data), "\(name): max abs error \(error)")
                errors.append((name, error))
            }
            reportErrors("layers.json embedding", errors)
        }
    }

    @Test("embedding's weight gradient matches central differences")
    func gradientCheck() throws {
        var generator = SeededGenerator(seed: 71, purpose: "embedding-check")
        let layer = Embedding(numEmbeddings: 6, dim: 4, inputShape: [5], generator: &generator)
        // Token 2 appears three times, token 5 never.
        let x = Tensor(shape: [2, 5], values: [2, 0, 2, 4, 1, 3, 2, 0, 1, 4])
        let y = layer.forward(x, isTraining: true)
        let r = randomValues(y.count, generator: &generator)
        layer.weight.zeroGradient()
        _ = layer.backward(Tensor(shape: y.shape, values: r), needsInputGradient: false)
        let analytic = layer.weight.gradient.array
        let numeric = numericalGradient(of: layer.weight.value) {
            weightedSum(layer.forward(x, isTraining: true), r)
        }
        let error = gradientError(analytic: analytic, numeric: numeric)
        #expect(error <= gradientCheckTolerance, "relative error \(error)")
        #expect(analytic[(5 * 4)..<(6 * 4)].allSatisfy { $0 == 0 }, "an unused token gets no gradient")
        reportErrors("gradient check embedding", [("weight", error)])
    }

    @Test("embedding looks up rows: output (N, T, dim), y[n, t] = W[x[n, t]]")
    func lookup() throws {
        var generator = SeededGenerator(seed: 72)
        let layer = Embedding(numEmbeddings: 4, dim: 2, inputShape: [3], generator: &generator)
        layer.weight.value.load([0, 1, 10, 11, 20, 21, 30, 31])
        #expect(layer.outputShape == [3, 2])
        let y = layer.forward(Tensor(shape: [2, 3], values: [3, 0, 1, 2, 2, 3]), isTraining: false)
        #expect(y.shape == [2, 3, 2])
        #expect(y.array == [30, 31, 0, 1, 10, 11, 20, 21, 20, 21, 30, 31])
    }

    @Test("embedding's weight gradient accumulates across backward calls; the input gradient is nil, or zeros when asked")
    func accumulatesWithoutInputGradient() throws {
        var generator = SeededGenerator(seed: 73)
        let layer = Embedding(numEmbeddings: 3, dim: 2, inputShape: [2], generator: &generator)
        let x = Tensor(shape: [2, 2], values: [1, 1, 0, 1])
        _ = layer.forward(x, isTraining: true)
        let dy = Tensor(shape: [2, 2, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
        layer.weight.zeroGradient()
        #expect(layer.backward(dy, needsInputGradient: false) == nil)
        let expected: [Float] = [5, 6, 11, 14, 0, 0]  // row 0: dy[1, 0]; row 1: dy[0, 0] + dy[0, 1] + dy[1, 1]
        #expect(layer.weight.gradient.array == expected)
        let dx = try #require(layer.backward(dy, needsInputGradient: true))
        #expect(dx.shape == [2, 2] && dx.array.allSatisfy { $0 == 0 })
        #expect(layer.weight.gradient.array == [10, 12, 22, 28, 0, 0])
    }

    @Test("embedding initializes like torch: W ~ N(0, 1), shape (num_embeddings, dim), reproducibly")
    func initialization() {
        var first = SeededGenerator(seed: 74)
        var second = SeededGenerator(seed: 74)
        let a = Embedding(numEmbeddings: 200, dim: 50, inputShape: [8], generator: &first)
        let b = Embedding(numEmbeddings: 200, dim: 50, inputShape: [8], generator: &second)
        #expect(a.weight.value.array == b.weight.value.array)
        #expect(a.parameters.map(\.name) == ["weight"] && a.weight.shape == [200, 50] && a.weight.isWeight)
        let values = a.weight.value.array.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        // 10 000 draws: the sample mean's standard error is 0.01, the standard deviation's ≈ 0.007.
        #expect(abs(mean) < 0.04, "mean \(mean)")
        #expect(abs(std - 1) < 0.03, "std \(std)")
    }

    @Test("embedding reuses its output buffer when a smaller batch follows a larger one")
    func reusesBuffers() {
        var generator = SeededGenerator(seed: 75)
        let layer = Embedding(numEmbeddings: 5, dim: 3, inputShape: [4], generator: &generator)
        let large = layer.forward(Tensor(shape: [6, 4], repeating: 2), isTraining: true)
        let base = large.pointer
        let small = layer.forward(Tensor(shape: [2, 4], repeating: 4), isTraining: true)
        #expect(small === large && small.pointer == base && small.shape == [2, 4, 3])
    }

    @Test("embedding refuses an index past the table, naming the value, its position and the valid range")
    func refusesIndexPastTable() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var generator = SeededGenerator(seed: 1)
            let layer = Embedding(numEmbeddings: 7, dim: 3, inputShape: [3], generator: &generator)
            _ = layer.forward(Tensor(shape: [2, 3], values: [1, 2, 3, 1, 7, 2]), isTraining: true)
        }
        let message = String(decoding: try #require(result).standardErrorContent, as: UTF8.self)
        #expect(message.contains("embedding index 7.0 at sample 1, position 1 is not an integer in 0..<7 (num_embeddings)"),
                "\(message)")
    }

    @Test("embedding refuses a negative index")
    func refusesNegativeIndex() async {
        await #expect(processExitsWith: .failure) {
            var generator = SeededGenerator(seed: 1)
            let layer = Embedding(numEmbeddings: 7, dim: 3, inputShape: [3], generator: &generator)
            _ = layer.forward(Tensor(shape: [1, 3], values: [1, -1, 2]), isTraining: true)
        }
    }

    @Test("embedding refuses a fractional index instead of truncating it")
    func refusesFractionalIndex() async {
        await #expect(processExitsWith: .failure) {
            var generator = SeededGenerator(seed: 1)
            let layer = Embedding(numEmbeddings: 7, dim: 3, inputShape: [3], generator: &generator)
            _ = layer.forward(Tensor(shape: [1, 3], values: [1, 2.5, 2]), isTraining: true)
        }
    }

    @Test("embedding refuses a NaN index")
    func refusesNaNIndex() async {
        await #expect(processExitsWith: .failure) {
            var generator = SeededGenerator(seed: 1)
            let layer = Embedding(numEmbeddings: 7, dim: 3, inputShape: [3], generator: &generator)
            _ = layer.forward(Tensor(shape: [1, 3], values: [1, .nan, 2]), isTraining: true)
        }
    }
}
