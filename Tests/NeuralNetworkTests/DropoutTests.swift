import NeuralNetwork
import Tensors
import Testing

@Suite("Dropout")
struct DropoutTests {
    @Test("dropout's input gradient matches central differences with the mask replayed")
    func gradientCheck() throws {
        let dropout = Dropout(rate: 0.3, inputShape: [6], generator: SeededGenerator(seed: 31))
        var data = SeededGenerator(seed: 32)
        let x = randomTensor([5, 6], generator: &data)
        // Reseeding the layer's generator before every forward replays the same mask.
        let errors = checkLayerGradients(dropout, input: x, seed: 33) {
            dropout.generator = SeededGenerator(seed: 31)
        }
        #expect(errors["input"]! <= gradientCheckTolerance, "relative error \(errors["input"]!)")
        reportErrors("gradient check dropout", [("input", errors["input"]!)])
    }

    @Test("reseeding the generator replays the same mask; the next draws give another")
    func maskReplay() {
        let dropout = Dropout(rate: 0.5, inputShape: [64], generator: SeededGenerator(seed: 1))
        let x = Tensor(shape: [4, 64], repeating: 1)
        let first = dropout.forward(x, isTraining: true).array
        let second = dropout.forward(x, isTraining: true).array
        dropout.generator = SeededGenerator(seed: 1)
        let replayed = dropout.forward(x, isTraining: true).array
        #expect(first == replayed)
        #expect(first != second)
    }

    @Test("dropout keeps each element with probability 1 − p and scales it by 1/(1 − p)")
    func inverted() throws {
        let rate: Float = 0.25
        let dropout = Dropout(rate: rate, inputShape: [1000], generator: SeededGenerator(seed: 2))
        let x = Tensor(shape: [10, 1000], repeating: 2)
        let y = dropout.forward(x, isTraining: true).array
        let kept = y.filter { $0 != 0 }
        #expect(kept.allSatisfy { abs($0 - 2 / (1 - rate)) < 1e-6 })
        // 10 000 Bernoulli(0.75) draws: standard deviation of the kept fraction ≈ 0.0043.
        let fraction = Double(kept.count) / Double(y.count)
        #expect(abs(fraction - 0.75) < 0.02, "kept fraction \(fraction)")
        let dx = try #require(dropout.backward(Tensor(shape: [10, 1000], repeating: 1), needsInputGradient: true)).array
        #expect(zip(dx, y).allSatisfy { ($0 == 0) == ($1 == 0) })
    }

    @Test("dropout is the identity in evaluation mode and at rate 0")
    func identity() throws {
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let dropout = Dropout(rate: 0.5, inputShape: [3], generator: SeededGenerator(seed: 3))
        #expect(dropout.forward(x, isTraining: false).array == x.array)
        let dy = Tensor(shape: [2, 3], repeating: 1)
        #expect(try #require(dropout.backward(dy, needsInputGradient: true)).array == dy.array)
        let none = Dropout(rate: 0, inputShape: [3], generator: SeededGenerator(seed: 3))
        #expect(none.forward(x, isTraining: true).array == x.array)
        #expect(dropout.parameters.isEmpty)
    }
}
