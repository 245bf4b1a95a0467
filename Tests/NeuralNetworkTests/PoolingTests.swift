import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

/// A tensor of distinct values 0.1 apart, shuffled: max pooling's argmax cannot flip under a ±1e-2 step.
private func distinctTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    let count = shape.reduce(1, *)
    var generator = SeededGenerator(seed: seed, purpose: "distinct")
    var order = Array(0..<count)
    generator.shuffle(&order)
    return Tensor(shape: shape, values: order.map { Float($0 - count / 2) * 0.1 })
}

/// Runs a parameter-free layer on a fixture case and checks output and input gradient.
private func checkAgainstFixture(_ layer: any Layer, _ fixture: [String: Any], label: String) throws {
    let x = Tensor(try fixture.tensor("input"))
    let y = layer.forward(x, isTraining: true)
    let dx = try #require(layer.backward(Tensor(try fixture.tensor("output_grad")), needsInputGradient: true))
    var errors: [(String, Double)] = []
    for (name, actual, expected) in [
        ("output", y, try fixture.tensor("output")),
        ("input_grad", dx, try fixture.tensor("input_grad")),
    ] {
        #expect(actual.shape == expected.shape, "\(label) \(name) shape")
        let error = maxAbsError(actual.array, expected.data)
        #expect(error <= layerTolerance * scaleOf(expected.data), "\(label) \(name): max abs error \(error)")
        errors.append((name, error))
    }
    #expect(fixture.object("param_grads").isEmpty)
    reportErrors("layers.json \(label)", errors)
}

private func pair(_ value: Any?, default defaultValue: (Int, Int)) -> (Int, Int) {
    if let pair = value as? [Int], pair.count == 2 { return (pair[0], pair[1]) }
    if let side = value as? Int { return (side, side) }
    return defaultValue
}

@Suite("MaxPool2D")
struct MaxPool2DTests {
    @Test("max_pool2d matches torch's MaxPool2d in every reference case")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "maxpool2d" }
        try #require(!cases.isEmpty, "layers.json has no maxpool2d case")
        for fixture in cases {
            let config = fixture.object("config")
            let kernel = pair(config["kernel"], default: (2, 2))
            let shape = try fixture.tensor("input").shape
            let pool = MaxPool2D(inputShape: Array(shape.dropFirst()), kernel: kernel,
                                 stride: pair(config["stride"], default: kernel), padding: pair(config["padding"], default: (0, 0)))
            #expect(pool.parameters.isEmpty)
            try checkAgainstFixture(pool, fixture, label: "maxpool2d \(config)")
        }
    }

    @Test("max_pool2d gradients match central differences", arguments: [
        ((2, 2), (2, 2), (0, 0), [2, 6, 6]),  // the unrolled 2×2 path
        ((2, 2), (2, 2), (0, 0), [2, 5, 7]),  // odd sizes: the last row and column are dropped
        ((3, 3), (2, 2), (1, 1), [2, 7, 6]),  // overlapping windows with padding
        ((3, 2), (1, 2), (1, 0), [1, 5, 6]),  // asymmetric
    ])
    func gradientCheck(kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), inputShape: [Int]) {
        let pool = MaxPool2D(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding)
        let x = distinctTensor([2] + inputShape, seed: 5)
        let errors = checkLayerGradients(pool, input: x, seed: 6)
        #expect(errors.keys.sorted() == ["input"])
        #expect(errors["input"]! <= gradientCheckTolerance, "relative error \(errors["input"]!)")
        reportErrors("gradient check max_pool2d \(kernel) stride \(stride) padding \(padding)", [("input", errors["input"]!)])
    }

    @Test("max_pool2d's vectorized 2×2 path picks the same values and argmax as a plain loop, ties and NaN included",
          arguments: [[3, 8, 8], [2, 10, 14], [1, 9, 11], [2, 4, 30]])
    func twoByTwoMatchesPlainLoop(inputShape: [Int]) throws {
        let (C, H, W) = (inputShape[0], inputShape[1], inputShape[2])
        let pool = MaxPool2D(inputShape: inputShape, kernel: (2, 2))
        var generator = SeededGenerator(seed: 11)
        // Few distinct values (many ties), some NaN.
        let values: [Float] = (0..<(2 * C * H * W)).map { _ in
            let draw = generator.nextFloat()
            return draw < 0.05 ? .nan : Float(Int(draw * 4))
        }
        let x = Tensor(shape: [2] + inputShape, values: values)
        let y = pool.forward(x, isTraining: true)
        let dy = Tensor(shape: y.shape, values: (0..<y.count).map { Float($0 + 1) })
        let dx = try #require(pool.backward(dy, needsInputGradient: true))
        let (OH, OW) = (H / 2, W / 2)
        var expectedY: [Float] = []
        var expectedDx = [Float](repeating: 0, count: x.count)
        for plane in 0..<(2 * C) {
            for oh in 0..<OH {
                for ow in 0..<OW {
                    var best = -Float.infinity, at = -1
                    for (dh, dw) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let index = plane * H * W + (2 * oh + dh) * W + 2 * ow + dw
                        if at < 0 || x[index] > best || x[index].isNaN { best = x[index]; at = index }
                    }
                    expectedY.append(best)
                    expectedDx[at] += dy[expectedY.count - 1]
                }
            }
        }
        #expect(y.array.map(\.bitPattern) == expectedY.map(\.bitPattern))
        #expect(dx.array == expectedDx)
    }

    @Test("max_pool2d routes the gradient to the first maximum on ties, pads with −∞ and propagates NaN")
    func tiesPaddingAndNaN() throws {
        let pool = MaxPool2D(inputShape: [1, 2, 2], kernel: (2, 2))
        let y = pool.forward(Tensor(shape: [1, 1, 2, 2], values: [1, 3, 3, 2]), isTraining: true)
        #expect(y.array == [3])
        let dx = try #require(pool.backward(Tensor(shape: [1, 1, 1, 1], values: [5]), needsInputGradient: true))
        #expect(dx.array == [0, 5, 0, 0])

        let nan = pool.forward(Tensor(shape: [1, 1, 2, 2], values: [1, .nan, 3, 2]), isTraining: true)
        #expect(nan[0].isNaN)

        // All-negative input with padding 1: the padding never wins.
        let padded = MaxPool2D(inputShape: [1, 2, 2], kernel: (2, 2), stride: (1, 1), padding: (1, 1))
        #expect(padded.outputShape == [1, 3, 3])
        let out = padded.forward(Tensor(shape: [1, 1, 2, 2], values: [-1, -2, -3, -4]), isTraining: true)
        #expect(out.array == [-1, -1, -2, -1, -1, -2, -3, -3, -4])
    }

    @Test("max_pool2d reuses its buffers when the batch size changes")
    func reusesBuffers() throws {
        let pool = MaxPool2D(inputShape: [2, 4, 4], kernel: (2, 2))
        let large = pool.forward(distinctTensor([5, 2, 4, 4], seed: 1), isTraining: true)
        let largeGradient = try #require(pool.backward(Tensor(shape: [5, 2, 2, 2], repeating: 1), needsInputGradient: true))
        let small = distinctTensor([2, 2, 4, 4], seed: 2)
        let y = pool.forward(small, isTraining: true)
        let dx = try #require(pool.backward(Tensor(shape: [2, 2, 2, 2], repeating: 1), needsInputGradient: true))
        #expect(y === large && dx === largeGradient)
        #expect(y.shape == [2, 2, 2, 2] && dx.shape == [2, 2, 4, 4])
        let fresh = MaxPool2D(inputShape: [2, 4, 4], kernel: (2, 2))
        #expect(fresh.forward(small, isTraining: true).array == y.array)
        #expect(try #require(fresh.backward(Tensor(shape: [2, 2, 2, 2], repeating: 1), needsInputGradient: true)).array == dx.array)
        #expect(pool.backward(Tensor(shape: [2, 2, 2, 2], repeating: 1), needsInputGradient: false) == nil)
    }

    @Test("pooling configurations are checked: stride defaults to the kernel, padding at most half the kernel")
    func configuration() throws {
        #expect(MaxPool2D(inputShape: [3, 28, 28], kernel: (2, 2)).outputShape == [3, 14, 14])
        #expect(MaxPool2D(inputShape: [3, 7, 7], kernel: (2, 2)).outputShape == [3, 3, 3])
        #expect(MaxPool2D(inputShape: [3, 7, 7], kernel: (3, 3), stride: (2, 2)).stride == (2, 2))
        #expect(MaxPool2D.configurationProblem(inputShape: [3, 8, 8], kernel: (2, 2)) == nil)
        #expect(try #require(MaxPool2D.configurationProblem(inputShape: [3, 8, 8], kernel: (2, 2), padding: (2, 0)))
            .contains("at most half the kernel"))
        #expect(try #require(AvgPool2D.configurationProblem(inputShape: [3, 1, 8], kernel: (2, 2))).contains("larger than"))
        #expect(try #require(AvgPool2D.configurationProblem(inputShape: [8], kernel: (2, 2))).contains("[channels, height, width]"))
        #expect(try #require(GlobalAvgPool2D.configurationProblem(inputShape: [4, 4])).contains("[channels, height, width]"))
    }
}

@Suite("AvgPool2D")
struct AvgPool2DTests {
    @Test("avg_pool2d matches torch's AvgPool2d in every reference case")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "avgpool2d" }
        try #require(!cases.isEmpty, "layers.json has no avgpool2d case")
        for fixture in cases {
            let config = fixture.object("config")
            let kernel = pair(config["kernel"], default: (2, 2))
            let shape = try fixture.tensor("input").shape
            let pool = AvgPool2D(inputShape: Array(shape.dropFirst()), kernel: kernel,
                                 stride: pair(config["stride"], default: kernel), padding: pair(config["padding"], default: (0, 0)))
            try checkAgainstFixture(pool, fixture, label: "avgpool2d \(config)")
        }
    }

    @Test("avg_pool2d gradients match central differences", arguments: [
        ((2, 2), (2, 2), (0, 0), [2, 5, 6]),
        ((3, 3), (2, 2), (1, 1), [2, 7, 6]),
        ((3, 2), (1, 2), (1, 1), [1, 5, 6]),
    ])
    func gradientCheck(kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), inputShape: [Int]) {
        let pool = AvgPool2D(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding)
        var generator = SeededGenerator(seed: 7)
        let x = randomTensor([2] + inputShape, generator: &generator)
        let errors = checkLayerGradients(pool, input: x, seed: 8)
        #expect(errors["input"]! <= gradientCheckTolerance, "relative error \(errors["input"]!)")
        reportErrors("gradient check avg_pool2d \(kernel) stride \(stride) padding \(padding)", [("input", errors["input"]!)])
    }

    @Test("avg_pool2d counts padded zeros in the divisor, like torch's count_include_pad")
    func countIncludesPadding() throws {
        let pool = AvgPool2D(inputShape: [1, 2, 2], kernel: (2, 2), stride: (1, 1), padding: (1, 1))
        let y = pool.forward(Tensor(shape: [1, 1, 2, 2], values: [4, 4, 4, 4]), isTraining: true)
        #expect(y.shape == [1, 1, 3, 3])
        #expect(y.array == [1, 2, 1, 2, 4, 2, 1, 2, 1])
        let dx = try #require(pool.backward(Tensor(shape: [1, 1, 3, 3], repeating: 4), needsInputGradient: true))
        #expect(dx.array == [4, 4, 4, 4])  // each input sits in 4 windows, each passing 4/4
    }

    @Test("avg_pool2d reuses its buffers when the batch size changes")
    func reusesBuffers() throws {
        let pool = AvgPool2D(inputShape: [2, 4, 4], kernel: (2, 2))
        var generator = SeededGenerator(seed: 3)
        let large = pool.forward(randomTensor([5, 2, 4, 4], generator: &generator), isTraining: true)
        let largeGradient = try #require(pool.backward(Tensor(shape: [5, 2, 2, 2], repeating: 1), needsInputGradient: true))
        let y = pool.forward(randomTensor([2, 2, 4, 4], generator: &generator), isTraining: true)
        let dx = try #require(pool.backward(Tensor(shape: [2, 2, 2, 2], repeating: 1), needsInputGradient: true))
        #expect(y === large && dx === largeGradient)
        #expect(y.shape == [2, 2, 2, 2] && dx.shape == [2, 2, 4, 4])
        #expect(dx.array.allSatisfy { $0 == 0.25 })
    }
}

@Suite("GlobalAvgPool2D")
struct GlobalAvgPool2DTests {
    @Test("global_avg_pool2d averages each channel's plane into one value")
    func averagesPlanes() throws {
        let pool = GlobalAvgPool2D(inputShape: [2, 2, 3])
        #expect(pool.outputShape == [2])
        let x = Tensor(shape: [2, 2, 2, 3], values: (0..<24).map(Float.init))
        let y = pool.forward(x, isTraining: true)
        #expect(y.shape == [2, 2])
        #expect(y.array == [2.5, 8.5, 14.5, 20.5])
        let dx = try #require(pool.backward(Tensor(shape: [2, 2], values: [6, 12, 0, -6]), needsInputGradient: true))
        #expect(dx.shape == [2, 2, 2, 3])
        #expect(dx.array == Array(repeating: 1, count: 6) + Array(repeating: 2, count: 6)
            + Array(repeating: 0, count: 6) + Array(repeating: -1, count: 6))
    }

    @Test("global_avg_pool2d gradients match central differences")
    func gradientCheck() {
        let pool = GlobalAvgPool2D(inputShape: [3, 4, 5])
        var generator = SeededGenerator(seed: 9)
        let x = randomTensor([2, 3, 4, 5], generator: &generator)
        let errors = checkLayerGradients(pool, input: x, seed: 10)
        #expect(errors["input"]! <= gradientCheckTolerance, "relative error \(errors["input"]!)")
        reportErrors("gradient check global_avg_pool2d", [("input", errors["input"]!)])
    }

    @Test("global_avg_pool2d reuses its buffers when the batch size changes")
    func reusesBuffers() throws {
        let pool = GlobalAvgPool2D(inputShape: [3, 2, 2])
        let large = pool.forward(Tensor(shape: [4, 3, 2, 2], repeating: 1), isTraining: true)
        let largeGradient = try #require(pool.backward(Tensor(shape: [4, 3], repeating: 1), needsInputGradient: true))
        let y = pool.forward(Tensor(shape: [1, 3, 2, 2], repeating: 2), isTraining: true)
        let dx = try #require(pool.backward(Tensor(shape: [1, 3], repeating: 4), needsInputGradient: true))
        #expect(y === large && dx === largeGradient)
        #expect(y.array == [2, 2, 2] && dx.array == Array(repeating: 1, count: 12))
    }
}
