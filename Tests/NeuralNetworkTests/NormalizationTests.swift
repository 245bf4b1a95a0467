import Foundation
import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

/// Max abs error of `actual` against a fixture tensor, checked against the layers tolerance.
private func expectMatches(_ actual: Tensor, _ expected: FixtureTensor, _ name: String, label: String,
                           into errors: inout [(String, Double)]) {
    #expect(actual.shape == expected.shape, "\(label) \(name) shape \(actual.shape) vs \(expected.shape)")
    let error = maxAbsError(actual.array, expected.data)
    #expect(error <= layerTolerance * scaleOf(expected.data), "\(label) \(name): max abs error \(error)")
    errors.append((name, error))
}

/// Sets γ and β to non-trivial values, so the gradient checks see the affine part too.
private func randomizeAffine(_ parameters: [Parameter], generator: inout SeededGenerator) {
    for parameter in parameters {
        let range: ClosedRange<Float> = parameter.name == "weight" ? 0.5...1.5 : -0.5...0.5
        for i in 0..<parameter.count { parameter.value[i] = generator.uniform(range.lowerBound, range.upperBound) }
    }
}

@Suite("Batch norm")
struct BatchNormTests {
    @Test("batch norm matches torch's BatchNorm1d and BatchNorm2d: output, gradients and running statistics after one step",
          arguments: ["batchnorm1d", "batchnorm2d"])
    func matchesTorch(layerName: String) throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == layerName }
        try #require(!cases.isEmpty, "layers.json has no \(layerName) case")
        for fixture in cases {
            let config = fixture.object("config")
            let input = try fixture.tensor("input")
            let layer = BatchNorm(inputShape: Array(input.shape.dropFirst()),
                                  eps: Float(config.double("eps") ?? 1e-5), momentum: Float(config.double("momentum") ?? 0.1))
            #expect(layer.channels == config.int("features"))
            let params = fixture.object("params")
            for parameter in layer.parameters {
                parameter.value.load(try params.tensor(parameter.name))
                parameter.zeroGradient()
            }
            let isTraining = (config.string("mode") ?? "train") == "train"

            let x = Tensor(input)
            let y = layer.forward(x, isTraining: isTraining)
            let dx = try #require(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: true))

            var errors: [(String, Double)] = []
            expectMatches(y, try fixture.tensor("output"), "output", label: layerName, into: &errors)
            expectMatches(dx, try fixture.tensor("input_grad"), "input_grad", label: layerName, into: &errors)
            let grads = fixture.object("param_grads")
            for parameter in layer.parameters {
                expectMatches(parameter.gradient, try grads.tensor(parameter.name), "grad \(parameter.name)",
                              label: layerName, into: &errors)
            }
            if fixture["running_mean_after"] != nil {
                expectMatches(layer.runningMean, try fixture.tensor("running_mean_after"), "running_mean",
                              label: layerName, into: &errors)
                expectMatches(layer.runningVar, try fixture.tensor("running_var_after"), "running_var",
                              label: layerName, into: &errors)
                #expect(layer.numBatchesTracked.array == [isTraining ? 1 : 0])
            }
            reportErrors("layers.json \(layerName)", errors)
        }
    }

    @Test("batch norm gradients in training mode match central differences, for vectors and for feature maps",
          arguments: [[5], [3, 3, 4]])
    func gradientCheckTraining(sampleShape: [Int]) throws {
        var generator = SeededGenerator(seed: 41, purpose: "batchnorm-check")
        let layer = BatchNorm(inputShape: sampleShape)
        randomizeAffine(layer.parameters, generator: &generator)
        let x = randomTensor([sampleShape.count == 1 ? 6 : 3] + sampleShape, generator: &generator)
        let errors = checkLayerGradients(layer, input: x, isTraining: true, seed: 42)
        #expect(Set(errors.keys) == ["input", "weight", "bias"])
        let sorted = errors.sorted { $0.key < $1.key }
        for (name, error) in sorted {
            #expect(error <= gradientCheckTolerance, "\(sampleShape) \(name): relative error \(error)")
        }
        reportErrors("gradient check batch_norm\(sampleShape) training", sorted.map { ($0.key, $0.value) })
    }

    @Test("batch norm gradients in eval mode are the per-channel affine map's and match central differences")
    func gradientCheckEval() throws {
        var generator = SeededGenerator(seed: 43, purpose: "batchnorm-check")
        let layer = BatchNorm(inputShape: [2, 3, 3])
        randomizeAffine(layer.parameters, generator: &generator)
        // Two training steps give running statistics other than 0 and 1.
        for _ in 0..<2 { _ = layer.forward(randomTensor([4, 2, 3, 3], in: -1...3, generator: &generator), isTraining: true) }
        let x = randomTensor([3, 2, 3, 3], generator: &generator)
        let errors = checkLayerGradients(layer, input: x, isTraining: false, seed: 44)
        let sorted = errors.sorted { $0.key < $1.key }
        for (name, error) in sorted {
            #expect(error <= gradientCheckTolerance, "\(name): relative error \(error)")
        }
        reportErrors("gradient check batch_norm eval", sorted.map { ($0.key, $0.value) })

        // dx = γ/√(running_var + ε) · dy exactly (per channel).
        _ = layer.forward(x, isTraining: false)
        let dy = randomTensor(x.shape, generator: &generator)
        let dx = try #require(layer.backward(dy, needsInputGradient: true))
        var expected: [Double] = []
        for i in 0..<x.count {
            let channel = (i / 9) % 2
            let scale = Double(layer.weight.value[channel]) / (Double(layer.runningVar[channel]) + 1e-5).squareRoot()
            expected.append(scale * Double(dy[i]))
        }
        #expect(maxAbsError(dx.array, expected) <= 1e-6)
    }

    @Test("running statistics follow torch's update: momentum 0.1 towards the batch mean and the unbiased variance")
    func runningStatistics() throws {
        let layer = BatchNorm(inputShape: [2, 3])  // C = 2 channels, S = 3 positions each
        var generator = SeededGenerator(seed: 45)
        var mean: [Double] = [0, 0], variance: [Double] = [1, 1]
        for step in 1...3 {
            let x = randomTensor([4, 2, 3], in: Float(-step)...Float(2 * step), generator: &generator)
            _ = layer.forward(x, isTraining: true)
            for channel in 0..<2 {
                var values: [Double] = []
                for n in 0..<4 { for s in 0..<3 { values.append(Double(x[(n * 2 + channel) * 3 + s])) } }
                let m = values.reduce(0, +) / Double(values.count)
                let unbiased = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)
                mean[channel] = 0.9 * mean[channel] + 0.1 * m
                variance[channel] = 0.9 * variance[channel] + 0.1 * unbiased
            }
        }
        #expect(maxAbsError(layer.runningMean.array, mean) <= 1e-6)
        #expect(maxAbsError(layer.runningVar.array, variance) <= 1e-6)
        #expect(layer.numBatchesTracked.array == [3])
    }

    @Test("batch norm in eval mode normalizes with the running statistics and leaves them unchanged")
    func evalUsesRunningStatistics() throws {
        var generator = SeededGenerator(seed: 46)
        let layer = BatchNorm(inputShape: [3])
        randomizeAffine(layer.parameters, generator: &generator)
        for _ in 0..<4 { _ = layer.forward(randomTensor([8, 3], in: 1...5, generator: &generator), isTraining: true) }
        let mean = layer.runningMean.array, variance = layer.runningVar.array
        #expect(mean.allSatisfy { $0 > 0.5 } && variance.allSatisfy { $0 != 1 })

        let x = randomTensor([5, 3], in: 0...6, generator: &generator)
        let y = layer.forward(x, isTraining: false).array
        var expected: [Double] = []
        for i in 0..<x.count {
            let c = i % 3
            let normalized = (Double(x[i]) - Double(mean[c])) / (Double(variance[c]) + 1e-5).squareRoot()
            expected.append(Double(layer.weight.value[c]) * normalized + Double(layer.bias.value[c]))
        }
        #expect(maxAbsError(y, expected) <= 1e-5)
        #expect(layer.runningMean.array == mean && layer.runningVar.array == variance)
        #expect(layer.numBatchesTracked.array == [4])

        // Each sample is normalized on its own: a batch of one gives the same row.
        let single = Tensor(shape: [1, 3], values: Array(x.array[6..<9]))
        let row = layer.forward(single, isTraining: false).array
        #expect(maxAbsError(row, expected[6..<9].map { $0 }) <= 1e-5)
    }

    @Test("batch norm exposes weight and bias as parameters and torch's buffers running_mean, running_var, num_batches_tracked")
    func namesAndBuffers() throws {
        let layer = BatchNorm(inputShape: [4, 2, 2])
        #expect(layer.parameters.map(\.name) == ["weight", "bias"])
        #expect(layer.parameters.allSatisfy { !$0.isWeight && $0.shape == [4] })
        #expect(layer.weight.value.array == [1, 1, 1, 1] && layer.bias.value.array == [0, 0, 0, 0])
        #expect(layer.buffers.map(\.name) == ["running_mean", "running_var", "num_batches_tracked"])
        #expect(layer.buffers.map(\.tensor.shape) == [[4], [4], []])
        #expect(layer.runningMean.array == [0, 0, 0, 0] && layer.runningVar.array == [1, 1, 1, 1])
        #expect(layer.numBatchesTracked.array == [0])
        #expect(layer.outputShape == [4, 2, 2] && layer.channels == 4 && layer.spatialSize == 4)
        // The buffers are the live tensors: a training step shows through them.
        #expect(layer.buffers[0].tensor === layer.runningMean && layer.buffers[1].tensor === layer.runningVar)
        var generator = SeededGenerator(seed: 47)
        _ = layer.forward(randomTensor([2, 4, 2, 2], in: 2...4, generator: &generator), isTraining: true)
        #expect(layer.buffers[0].tensor.array.allSatisfy { $0 > 0.1 })
        #expect(layer.buffers[2].tensor.array == [1])
    }

    @Test("batch norm parameter gradients accumulate across backward calls; the input gradient does not")
    func gradientsAccumulate() throws {
        var generator = SeededGenerator(seed: 48)
        let layer = BatchNorm(inputShape: [2, 2, 2])
        randomizeAffine(layer.parameters, generator: &generator)
        let x = randomTensor([3, 2, 2, 2], generator: &generator)
        let dy = randomTensor([3, 2, 2, 2], generator: &generator)
        _ = layer.forward(x, isTraining: true)
        let first = try #require(layer.backward(dy, needsInputGradient: true)).array
        let once = layer.parameters.map(\.gradient.array)
        #expect(once.allSatisfy { $0.contains { $0 != 0 } })
        let second = try #require(layer.backward(dy, needsInputGradient: true)).array
        #expect(first == second)
        for (parameter, single) in zip(layer.parameters, once) {
            #expect(maxAbsError(parameter.gradient.array, single.map { 2 * Double($0) }) <= 1e-6, "\(parameter.name)")
        }
        #expect(layer.backward(dy, needsInputGradient: false) == nil)
    }

    @Test("batch norm reuses its buffers when a smaller batch follows a larger one")
    func reusesBuffers() throws {
        var generator = SeededGenerator(seed: 49)
        let layer = BatchNorm(inputShape: [3, 2, 2])
        let large = layer.forward(randomTensor([6, 3, 2, 2], generator: &generator), isTraining: true)
        let largeGradient = try #require(layer.backward(randomTensor([6, 3, 2, 2], generator: &generator), needsInputGradient: true))
        let base = large.pointer
        let small = layer.forward(randomTensor([2, 3, 2, 2], generator: &generator), isTraining: true)
        let smallGradient = try #require(layer.backward(randomTensor([2, 3, 2, 2], generator: &generator), needsInputGradient: true))
        #expect(small === large && small.pointer == base && small.shape == [2, 3, 2, 2])
        #expect(smallGradient === largeGradient && smallGradient.shape == [2, 3, 2, 2])
    }

    @Test("batch norm refuses to train on a single value per channel, as torch does, and says why")
    func refusesSingleValueTraining() async throws {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let layer = BatchNorm(inputShape: [3])
            _ = layer.forward(Tensor(shape: [1, 3], values: [1, 2, 3]), isTraining: true)
        }
        let message = String(decoding: try #require(result).standardErrorContent, as: UTF8.self)
        #expect(message.contains("batch_norm needs more than one value per channel while training"), "\(message)")
    }

    @Test("batch norm in eval mode accepts a batch of one")
    func evalBatchOfOne() {
        let layer = BatchNorm(inputShape: [3])
        let y = layer.forward(Tensor(shape: [1, 3], values: [1, 2, 3]), isTraining: false).array
        // Fresh running statistics (0, 1): y = x/√(1 + ε).
        #expect(maxAbsError(y, [1, 2, 3].map { $0 / (1 + 1e-5).squareRoot() }) <= 1e-6)
    }
}

@Suite("Layer norm")
struct LayerNormTests {
    @Test("layer norm matches torch's LayerNorm: output, input gradient and parameter gradients")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "layernorm" }
        try #require(!cases.isEmpty, "layers.json has no layernorm case")
        for fixture in cases {
            let config = fixture.object("config")
            let input = try fixture.tensor("input")
            let params = fixture.object("params")
            let normalizedShape = try params.tensor("weight").shape
            #expect(normalizedShape == [config.int("features") ?? -1])
            let layer = LayerNorm(inputShape: Array(input.shape.dropFirst()), normalizedShape: normalizedShape,
                                  eps: Float(config.double("eps") ?? 1e-5))
            for parameter in layer.parameters {
                parameter.value.load(try params.tensor(parameter.name))
                parameter.zeroGradient()
            }
            let y = layer.forward(Tensor(input), isTraining: true)
            let dx = try #require(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: true))

            var errors: [(String, Double)] = []
            expectMatches(y, try fixture.tensor("output"), "output", label: "layernorm", into: &errors)
            expectMatches(dx, try fixture.tensor("input_grad"), "input_grad", label: "layernorm", into: &errors)
            let grads = fixture.object("param_grads")
            for parameter in layer.parameters {
                expectMatches(parameter.gradient, try grads.tensor(parameter.name), "grad \(parameter.name)",
                              label: "layernorm", into: &errors)
            }
            reportErrors("layers.json layernorm", errors)
        }
    }

    @Test("layer norm gradients match central differences, over the whole sample and over the last axis",
          arguments: [nil, [4]] as [[Int]?])
    func gradientCheck(normalizedShape: [Int]?) throws {
        var generator = SeededGenerator(seed: 51, purpose: "layernorm-check")
        let layer = LayerNorm(inputShape: [3, 4], normalizedShape: normalizedShape)
        randomizeAffine(layer.parameters, generator: &generator)
        let x = randomTensor([3, 3, 4], generator: &generator)
        let errors = checkLayerGradients(layer, input: x, seed: 52)
        #expect(Set(errors.keys) == ["input", "weight", "bias"])
        let sorted = errors.sorted { $0.key < $1.key }
        for (name, error) in sorted {
            #expect(error <= gradientCheckTolerance, "\(name): relative error \(error)")
        }
        reportErrors("gradient check layer_norm over \(layer.normalizedShape)", sorted.map { ($0.key, $0.value) })
    }

    @Test("layer norm over the last axis normalizes each row of a sample on its own")
    func lastAxisIsPerRow() throws {
        var generator = SeededGenerator(seed: 53)
        let perRow = LayerNorm(inputShape: [2, 3], normalizedShape: [3])
        #expect(perRow.weight.shape == [3] && perRow.groupsPerSample == 2 && perRow.groupSize == 3)
        randomizeAffine(perRow.parameters, generator: &generator)
        let rows = LayerNorm(inputShape: [3])
        for (a, b) in zip(rows.parameters, perRow.parameters) { a.value.load(b.value.array) }

        let x = randomTensor([4, 2, 3], generator: &generator)
        let flat = Tensor(shape: [8, 3], values: x.array)
        #expect(maxAbsError(perRow.forward(x, isTraining: true).array,
                            rows.forward(flat, isTraining: true).array.map(Double.init)) <= 1e-6)
        let dy = randomTensor([4, 2, 3], generator: &generator)
        let dx = try #require(perRow.backward(dy, needsInputGradient: true)).array
        let dxRows = try #require(rows.backward(Tensor(shape: [8, 3], values: dy.array), needsInputGradient: true)).array
        #expect(maxAbsError(dx, dxRows.map(Double.init)) <= 1e-6)
        for (a, b) in zip(perRow.parameters, rows.parameters) {
            #expect(maxAbsError(a.gradient.array, b.gradient.array.map(Double.init)) <= 1e-5, "\(a.name)")
        }
    }

    @Test("layer norm over the whole sample gives every sample zero mean and unit variance before the affine map")
    func wholeSample() throws {
        var generator = SeededGenerator(seed: 54)
        let layer = LayerNorm(inputShape: [2, 5])
        #expect(layer.normalizedShape == [2, 5] && layer.weight.shape == [2, 5] && layer.groupsPerSample == 1)
        #expect(layer.parameters.map(\.name) == ["weight", "bias"] && layer.parameters.allSatisfy { !$0.isWeight })
        #expect(layer.buffers.isEmpty)
        let x = randomTensor([3, 2, 5], in: -4...9, generator: &generator)
        let y = layer.forward(x, isTraining: false).array
        for sample in 0..<3 {
            let values = y[(sample * 10)..<(sample * 10 + 10)].map(Double.init)
            let mean = values.reduce(0, +) / 10
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 10
            #expect(abs(mean) <= 1e-6 && abs(variance - 1) <= 1e-3, "sample \(sample): mean \(mean), variance \(variance)")
        }
        // Same in training and eval: no batch statistics.
        #expect(layer.forward(x, isTraining: true).array == y)
    }

    @Test("layer norm parameter gradients accumulate and buffers are reused for a smaller batch")
    func accumulatesAndReuses() throws {
        var generator = SeededGenerator(seed: 55)
        let layer = LayerNorm(inputShape: [6])
        randomizeAffine(layer.parameters, generator: &generator)
        let large = layer.forward(randomTensor([5, 6], generator: &generator), isTraining: true)
        let base = large.pointer
        let x = randomTensor([2, 6], generator: &generator)
        let small = layer.forward(x, isTraining: true)
        #expect(small === large && small.pointer == base && small.shape == [2, 6])
        let dy = randomTensor([2, 6], generator: &generator)
        _ = layer.backward(dy, needsInputGradient: false)
        let once = layer.parameters.map(\.gradient.array)
        #expect(layer.backward(dy, needsInputGradient: false) == nil)
        for (parameter, single) in zip(layer.parameters, once) {
            #expect(maxAbsError(parameter.gradient.array, single.map { 2 * Double($0) }) <= 1e-6, "\(parameter.name)")
        }
    }
}
