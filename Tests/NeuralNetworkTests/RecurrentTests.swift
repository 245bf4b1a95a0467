import Foundation
@testable import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

/// The two recurrent layers share their initializer, so they share these checks.
enum RecurrentKind: String {
    case lstm, gru

    func make(_ inputShape: [Int], _ hiddenSize: Int, _ returnSequences: Bool,
              _ generator: inout SeededGenerator) -> any Layer {
        switch self {
        case .lstm: LSTM(inputShape: inputShape, hiddenSize: hiddenSize, returnSequences: returnSequences,
                         generator: &generator)
        case .gru: GRU(inputShape: inputShape, hiddenSize: hiddenSize, returnSequences: returnSequences,
                       generator: &generator)
        }
    }

    /// Gate blocks stacked in the weights' rows: i, f, g, o or r, z, n.
    var gateCount: Int { self == .lstm ? 4 : 3 }
}

/// Runs the `layers.json` case of `kind` (batch-first, every hidden state returned) and checks the output,
/// the input gradient and the four parameter gradients against torch's.
func checkRecurrentFixture(_ kind: RecurrentKind) throws {
    let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == kind.rawValue }
    try #require(!cases.isEmpty, "layers.json has no \(kind) case")
    for fixture in cases {
        let x = Tensor(try fixture.tensor("input"))
        let config = fixture.object("config")
        let hiddenSize = try #require(config.int("hidden_size"))
        #expect(config.int("input_size") == x.shape[2])
        var generator = SeededGenerator(seed: 1)
        let layer = kind.make([x.shape[1], x.shape[2]], hiddenSize, true, &generator)
        // The fixture names parameters `rnn.weight_ih_l0` …; the layer's names are torch's without the module prefix.
        let params = fixture.object("params")
        #expect(Set(params.keys) == Set(layer.parameters.map { "rnn.\($0.name)" }))
        for parameter in layer.parameters {
            let value = try params.tensor("rnn.\(parameter.name)")
            #expect(parameter.shape == value.shape, "\(parameter.name) shape")
            parameter.value.load(value)
            parameter.zeroGradient()
        }

        let y = layer.forward(x, isTraining: true)
        let dx = try #require(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: true))
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
        for parameter in layer.parameters {
            let expected = try expectedGrads.tensor("rnn.\(parameter.name)")
            #expect(parameter.gradient.shape == expected.shape, "grad \(parameter.name) shape")
            let error = maxAbsError(parameter.gradient.array, expected.data)
            #expect(error <= layerTolerance * scaleOf(expected.data), "grad \(parameter.name): max abs error \(error)")
            errors.append(("grad \(parameter.name)", error))
        }
        reportErrors("layers.json \(kind)", errors)
    }
}

/// Central differences of Σ layer(x) ⊙ R against backward, for the input and all four parameters.
/// H = 5 and I = 3 leave remainders after any vector width; weights are drawn in ±0.8 (wider than
/// torch's ±1/√5) so that the gates leave their linear range.
func checkRecurrentGradients(_ kind: RecurrentKind, returnSequences: Bool) throws {
    var generator = SeededGenerator(seed: returnSequences ? 21 : 22, purpose: "\(kind)-check")
    let layer = kind.make([4, 3], 5, returnSequences, &generator)
    for parameter in layer.parameters {
        for i in 0..<parameter.count { parameter.value[i] = generator.uniform(-0.8, 0.8) }
    }
    let x = randomTensor([3, 4, 3], in: -1.5...1.5, generator: &generator)
    let errors = checkLayerGradients(layer, input: x, seed: returnSequences ? 23 : 24)
    #expect(Set(errors.keys) == ["input", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"])
    let sorted = errors.sorted { $0.key < $1.key }
    for (name, error) in sorted {
        #expect(error <= gradientCheckTolerance, "\(name): relative error \(error)")
    }
    reportErrors("gradient check \(kind)(returnSequences: \(returnSequences))", sorted.map { ($0.key, $0.value) })
}

/// A large batch, then a smaller one, then the large one again: the output and input-gradient buffers
/// are the same objects throughout, and every result equals that of a fresh layer with the same weights.
func checkRecurrentBufferReuse(_ kind: RecurrentKind, returnSequences: Bool) throws {
    let initialState = SeededGenerator(seed: 31, purpose: "\(kind)-reuse")
    var generator = initialState
    let layer = kind.make([6, 4], 8, returnSequences, &generator)
    var data = SeededGenerator(seed: 32)
    let batches = [7, 3, 7].map { n in
        (x: randomTensor([n, 6, 4], generator: &data), dy: randomTensor([n] + layer.outputShape, generator: &data))
    }
    var firstOutput: Tensor?
    var firstInputGradient: Tensor?
    var base: UnsafeMutablePointer<Float>?
    for (x, dy) in batches {
        for parameter in layer.parameters { parameter.zeroGradient() }
        let y = layer.forward(x, isTraining: true)
        let dx = try #require(layer.backward(dy, needsInputGradient: true))
        #expect(y.shape == [x.rows] + layer.outputShape)
        #expect(dx.shape == x.shape)
        if let firstOutput, let firstInputGradient {
            #expect(y === firstOutput && dx === firstInputGradient)
            #expect(y.pointer == base)
        } else {
            firstOutput = y
            firstInputGradient = dx
            base = y.pointer
        }

        var freshGenerator = initialState
        let fresh = kind.make([6, 4], 8, returnSequences, &freshGenerator)
        let expectedOutput = fresh.forward(x, isTraining: true).array
        let expectedInputGradient = try #require(fresh.backward(dy, needsInputGradient: true)).array
        #expect(y.array == expectedOutput, "batch \(x.rows) output")
        #expect(dx.array == expectedInputGradient, "batch \(x.rows) input gradient")
        for (reused, reference) in zip(layer.parameters, fresh.parameters) {
            #expect(reused.gradient.array == reference.gradient.array, "batch \(x.rows) grad \(reused.name)")
        }
    }
}

/// With the same weights, the last-hidden-state layer returns the sequence layer's last step, and its
/// gradients equal the sequence layer's for an output gradient that is zero before the last step.
func checkRecurrentLastHiddenState(_ kind: RecurrentKind) throws {
    var generator = SeededGenerator(seed: 41, purpose: kind.rawValue)
    var sameGenerator = generator
    let sequence = kind.make([5, 3], 4, true, &generator)
    let last = kind.make([5, 3], 4, false, &sameGenerator)
    #expect(sequence.outputShape == [5, 4] && last.outputShape == [4])
    var data = SeededGenerator(seed: 42)
    let x = randomTensor([2, 5, 3], generator: &data)
    let dyLast = randomTensor([2, 4], generator: &data)
    let dySequence = Tensor(shape: [2, 5, 4])
    for sample in 0..<2 {
        for j in 0..<4 { dySequence[(sample * 5 + 4) * 4 + j] = dyLast[sample * 4 + j] }
    }
    let ySequence = sequence.forward(x, isTraining: true)
    let yLast = last.forward(x, isTraining: true)
    for sample in 0..<2 {
        for j in 0..<4 { #expect(yLast[sample * 4 + j] == ySequence[(sample * 5 + 4) * 4 + j]) }
    }
    let dxSequence = try #require(sequence.backward(dySequence, needsInputGradient: true)).array
    let dxLast = try #require(last.backward(dyLast, needsInputGradient: true)).array
    #expect(maxAbsError(dxLast, dxSequence.map(Double.init)) <= 1e-6)
    for (a, b) in zip(last.parameters, sequence.parameters) {
        #expect(maxAbsError(a.gradient.array, b.gradient.array.map(Double.init)) <= 1e-6, "grad \(a.name)")
    }
}

/// Two backward calls after one forward leave twice the parameter gradients of one.
func checkRecurrentAccumulation(_ kind: RecurrentKind) throws {
    var generator = SeededGenerator(seed: 51, purpose: kind.rawValue)
    let layer = kind.make([4, 3], 6, true, &generator)
    let x = randomTensor([3, 4, 3], generator: &generator)
    let dy = randomTensor([3, 4, 6], generator: &generator)
    for parameter in layer.parameters { parameter.zeroGradient() }
    _ = layer.forward(x, isTraining: true)
    _ = layer.backward(dy, needsInputGradient: false)
    let once = layer.parameters.map(\.gradient.array)
    #expect(layer.backward(dy, needsInputGradient: false) == nil)
    for (parameter, single) in zip(layer.parameters, once) {
        #expect(single.contains { $0 != 0 }, "\(parameter.name)")
        #expect(maxAbsError(parameter.gradient.array, single.map { 2 * Double($0) }) <= 1e-5, "\(parameter.name)")
    }
}

/// torch's parameter names, shapes and order; every tensor uniform in ±1/√H, reproducible from the seed.
func checkRecurrentInitialization(_ kind: RecurrentKind) {
    var first = SeededGenerator(seed: 9)
    var second = SeededGenerator(seed: 9)
    let a = kind.make([32, 16], 64, false, &first)
    let b = kind.make([32, 16], 64, false, &second)
    #expect(a.parameters.map(\.name) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"])
    let rows = kind.gateCount * 64
    #expect(a.parameters.map(\.shape) == [[rows, 16], [rows, 64], [rows], [rows]])
    #expect(a.parameters.map(\.isWeight) == [true, true, false, false])
    let bound: Float = 1 / 8
    for (p, q) in zip(a.parameters, b.parameters) {
        #expect(p.value.array == q.value.array, "\(p.name) reproducible")
        #expect(p.value.array.allSatisfy { abs($0) <= bound }, "\(p.name) within ±1/√H")
        #expect(p.value.array.contains { abs($0) > 0.9 * bound }, "\(p.name) spans ±1/√H")
    }
}

@Suite("LSTM")
struct LSTMTests {
    @Test("lstm matches torch's LSTM output, input gradient and all four parameter gradients")
    func matchesTorch() throws { try checkRecurrentFixture(.lstm) }

    @Test("lstm gradients match central differences", arguments: [true, false])
    func gradientCheck(returnSequences: Bool) throws {
        try checkRecurrentGradients(.lstm, returnSequences: returnSequences)
    }

    @Test("lstm reuses its buffers when the batch size changes, with the same results as a fresh layer",
          arguments: [true, false])
    func reusesBuffers(returnSequences: Bool) throws {
        try checkRecurrentBufferReuse(.lstm, returnSequences: returnSequences)
    }

    @Test("lstm without return_sequences returns the last hidden state and back-propagates through it")
    func lastHiddenState() throws { try checkRecurrentLastHiddenState(.lstm) }

    @Test("lstm gradients accumulate across backward calls")
    func gradientsAccumulate() throws { try checkRecurrentAccumulation(.lstm) }

    @Test("lstm initializes like torch: four tensors uniform in ±1/√H, gates i, f, g, o stacked in 4H rows")
    func initialization() { checkRecurrentInitialization(.lstm) }
}

@Suite("GRU")
struct GRUTests {
    @Test("gru matches torch's GRU output, input gradient and all four parameter gradients")
    func matchesTorch() throws { try checkRecurrentFixture(.gru) }

    @Test("gru gradients match central differences", arguments: [true, false])
    func gradientCheck(returnSequences: Bool) throws {
        try checkRecurrentGradients(.gru, returnSequences: returnSequences)
    }

    @Test("gru reuses its buffers when the batch size changes, with the same results as a fresh layer",
          arguments: [true, false])
    func reusesBuffers(returnSequences: Bool) throws {
        try checkRecurrentBufferReuse(.gru, returnSequences: returnSequences)
    }

    @Test("gru without return_sequences returns the last hidden state and back-propagates through it")
    func lastHiddenState() throws { try checkRecurrentLastHiddenState(.gru) }

    @Test("gru gradients accumulate across backward calls")
    func gradientsAccumulate() throws { try checkRecurrentAccumulation(.gru) }

    @Test("gru initializes like torch: four tensors uniform in ±1/√H, gates r, z, n stacked in 3H rows")
    func initialization() { checkRecurrentInitialization(.gru) }
}

@Suite("Recurrent kernels")
struct RecurrentKernelsTests {
    @Test("the vectorizable exp, sigmoid and tanh agree with libm to float32 precision")
    func matchLibm() {
        var worstExp = 0.0, worstSigmoid = 0.0, worstTanh = 0.0
        for step in -200_000...200_000 {
            let x = Float(step) * 4.4e-4  // −88 … 88
            let expected = Foundation.exp(Double(x))
            if x > -87, x < 88 {
                worstExp = max(worstExp, abs(Double(RecurrentKernels.exp(x)) - expected) / expected)
            }
            worstSigmoid = max(worstSigmoid, abs(Double(RecurrentKernels.sigmoid(x)) - 1 / (1 + 1 / expected)))
            let t = Foundation.tanh(Double(x))
            worstTanh = max(worstTanh, abs(Double(RecurrentKernels.tanh(x)) - t) / max(abs(t), 1e-30))
        }
        #expect(worstExp <= 3e-7, "exp relative error \(worstExp)")
        #expect(worstSigmoid <= 2e-7, "sigmoid absolute error \(worstSigmoid)")
        #expect(worstTanh <= 5e-7, "tanh relative error \(worstTanh)")
        reportErrors("recurrent kernels vs libm", [("exp rel", worstExp), ("sigmoid abs", worstSigmoid),
                                                   ("tanh rel", worstTanh)])
    }

    @Test("sigmoid and tanh saturate cleanly far out and propagate NaN")
    func extremes() {
        for x: Float in [-1e30, -1000, -100, 100, 1000, 1e30] {
            let s = RecurrentKernels.sigmoid(x)
            #expect(s >= 0 && s <= 1 && abs(s - (x > 0 ? 1 : 0)) < 1e-30 + 1e-7)
            #expect(RecurrentKernels.tanh(x) == (x > 0 ? 1 : -1))
        }
        #expect(RecurrentKernels.tanh(0) == 0)
        #expect(RecurrentKernels.sigmoid(0) == 0.5)
        #expect(RecurrentKernels.sigmoid(.nan).isNaN && RecurrentKernels.tanh(.nan).isNaN)
    }
}
