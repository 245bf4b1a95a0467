import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

/// A conv2d configuration for the parameterized tests.
struct ConvCase: CustomTestStringConvertible, Sendable {
    let name: String
    let inputShape: [Int]
    let filters: Int
    let kernel: (Int, Int)
    var stride: (Int, Int) = (1, 1)
    var padding: (Int, Int) = (0, 0)
    var groups = 1
    var hasBias = true
    var batch = 2
    var testDescription: String { name }

    func make(activation: ActivationFunction = .linear, seed: UInt64) -> Conv2D {
        var generator = SeededGenerator(seed: seed, purpose: "conv-test")
        return Conv2D(inputShape: inputShape, filters: filters, kernel: kernel, stride: stride, padding: padding,
                      groups: groups, hasBias: hasBias, activation: activation, generator: &generator)
    }

    static let all: [ConvCase] = [
        ConvCase(name: "plain 3×3, padding 1", inputShape: [3, 5, 5], filters: 4, kernel: (3, 3), padding: (1, 1)),
        ConvCase(name: "stride 2, padding 1", inputShape: [2, 7, 6], filters: 3, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
        ConvCase(name: "asymmetric kernel 3×2, padding (1, 0), stride (2, 1)", inputShape: [2, 6, 5], filters: 3,
                 kernel: (3, 2), stride: (2, 1), padding: (1, 0)),
        ConvCase(name: "valid 2×2 without bias", inputShape: [3, 4, 5], filters: 2, kernel: (2, 2), hasBias: false),
        ConvCase(name: "grouped, groups 2", inputShape: [4, 5, 4], filters: 6, kernel: (3, 3), padding: (1, 1), groups: 2),
        ConvCase(name: "grouped 1×1 (pointwise)", inputShape: [4, 3, 3], filters: 6, kernel: (1, 1), groups: 2),
        ConvCase(name: "pointwise 1×1", inputShape: [3, 3, 4], filters: 5, kernel: (1, 1)),
        ConvCase(name: "depthwise, groups = channels", inputShape: [3, 5, 5], filters: 3, kernel: (3, 3), padding: (1, 1),
                 groups: 3, hasBias: false),
        ConvCase(name: "depthwise, multiplier 2, stride 2", inputShape: [2, 6, 7], filters: 4, kernel: (3, 3),
                 stride: (2, 2), padding: (1, 1), groups: 2),
        ConvCase(name: "depthwise, asymmetric kernel 2×3, stride (1, 2)", inputShape: [2, 5, 6], filters: 2, kernel: (2, 3),
                 stride: (1, 2), padding: (0, 1), groups: 2),
        ConvCase(name: "padding larger than the reach of the kernel", inputShape: [2, 2, 3], filters: 2, kernel: (3, 3),
                 padding: (2, 2)),
        ConvCase(name: "single input channel", inputShape: [1, 6, 6], filters: 4, kernel: (3, 3), padding: (1, 1)),
        ConvCase(name: "kernel 5×3, padding (1, 1): same width, shorter height", inputShape: [2, 7, 5], filters: 3,
                 kernel: (5, 3), padding: (1, 1)),
        ConvCase(name: "depthwise 5×5, same padding, on a plane smaller than the kernel's reach", inputShape: [2, 3, 4],
                 filters: 2, kernel: (5, 5), padding: (2, 2), groups: 2),
        ConvCase(name: "stride 2 on wide rows (vectorized stride-2 gather)", inputShape: [2, 5, 21], filters: 3, kernel: (3, 3),
                 stride: (2, 2), padding: (1, 1)),
        ConvCase(name: "depthwise stride 2 on wide rows", inputShape: [2, 4, 19], filters: 2, kernel: (3, 2), stride: (2, 2),
                 padding: (1, 0), groups: 2),
    ]
}

/// z = conv(x, W) + b directly from the definition, in Double: the oracle for the engine's three methods.
func convolutionByDefinition(_ conv: Conv2D, _ x: Tensor) -> [Double] {
    let (C, H, W) = (conv.inputShape[0], conv.inputShape[1], conv.inputShape[2])
    let (O, OH, OW) = (conv.outputShape[0], conv.outputShape[1], conv.outputShape[2])
    let Cg = C / conv.groups, Og = O / conv.groups
    let (kh, kw) = conv.kernel
    var z: [Double] = []
    for n in 0..<x.rows {
        for o in 0..<O {
            for oh in 0..<OH {
                for ow in 0..<OW {
                    var sum = Double(conv.bias?.value[o] ?? 0)
                    for cg in 0..<Cg {
                        let c = (o / Og) * Cg + cg
                        for ki in 0..<kh {
                            for kj in 0..<kw {
                                let ih = oh * conv.stride.height - conv.padding.height + ki
                                let iw = ow * conv.stride.width - conv.padding.width + kj
                                guard ih >= 0, ih < H, iw >= 0, iw < W else { continue }
                                let xv = Double(x[((n * C + c) * H + ih) * W + iw])
                                let wv = Double(conv.weight.value[((o * Cg + cg) * kh + ki) * kw + kj])
                                sum += xv * wv
                            }
                        }
                    }
                    z.append(sum)
                }
            }
        }
    }
    return z
}

/// dx, dW and db of z = conv(x, W) + b for dL/dz = dz, from the definition, in Double.
func convolutionGradientsByDefinition(_ conv: Conv2D, _ x: Tensor, _ dz: Tensor) -> (dx: [Double], dW: [Double], db: [Double]) {
    let (C, H, W) = (conv.inputShape[0], conv.inputShape[1], conv.inputShape[2])
    let (O, OH, OW) = (conv.outputShape[0], conv.outputShape[1], conv.outputShape[2])
    let Cg = C / conv.groups, Og = O / conv.groups
    let (kh, kw) = conv.kernel
    var dx = [Double](repeating: 0, count: x.count)
    var dW = [Double](repeating: 0, count: conv.weight.count)
    var db = [Double](repeating: 0, count: O)
    for n in 0..<x.rows {
        for o in 0..<O {
            for oh in 0..<OH {
                for ow in 0..<OW {
                    let g = Double(dz[((n * O + o) * OH + oh) * OW + ow])
                    db[o] += g
                    for cg in 0..<Cg {
                        let c = (o / Og) * Cg + cg
                        for ki in 0..<kh {
                            for kj in 0..<kw {
                                let ih = oh * conv.stride.height - conv.padding.height + ki
                                let iw = ow * conv.stride.width - conv.padding.width + kj
                                guard ih >= 0, ih < H, iw >= 0, iw < W else { continue }
                                let xi = ((n * C + c) * H + ih) * W + iw, wi = ((o * Cg + cg) * kh + ki) * kw + kj
                                dx[xi] += g * Double(conv.weight.value[wi])
                                dW[wi] += g * Double(x[xi])
                            }
                        }
                    }
                }
            }
        }
    }
    return (dx, dW, db)
}

private func sizePair(_ value: Any?, default defaultValue: Int) -> (Int, Int) {
    if let pair = value as? [Int], pair.count == 2 { return (pair[0], pair[1]) }
    if let side = value as? Int { return (side, side) }
    return (defaultValue, defaultValue)
}

@Suite("Conv2D")
struct Conv2DTests {
    @Test("conv2d matches torch's Conv2d forward, input gradient and parameter gradients in every reference case")
    func matchesTorchConv2d() throws {
        let cases = try ReferenceFixtures.cases("layers").filter { $0.string("layer") == "conv2d" }
        try #require(cases.count >= 4, "layers.json has \(cases.count) conv2d cases")
        for fixture in cases {
            let config = fixture.object("config")
            let params = fixture.object("params")
            let weight = try params.tensor("weight")
            let input = try fixture.tensor("input")
            let groups = config.int("groups") ?? 1
            var generator = SeededGenerator(seed: 1)
            let conv = Conv2D(inputShape: Array(input.shape.dropFirst()), filters: try #require(config.int("out_channels")),
                              kernel: sizePair(config["kernel"], default: 1), stride: sizePair(config["stride"], default: 1),
                              padding: sizePair(config["padding"], default: 0), groups: groups,
                              hasBias: params["bias"] != nil, generator: &generator)
            #expect(conv.weight.shape == weight.shape)
            conv.weight.value.load(weight)
            if let bias = conv.bias { bias.value.load(try params.tensor("bias")) }
            for parameter in conv.parameters { parameter.zeroGradient() }

            let x = Tensor(input)
            let y = conv.forward(x, isTraining: true)
            let dy = Tensor(try fixture.tensor("output_grad"))
            let dx = try #require(conv.backward(dy, needsInputGradient: true))

            let label = (config.string("note") ?? "\(config["kernel"]!) stride \(config["stride"]!) padding \(config["padding"]!)")
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
            let expectedGrads = fixture.object("param_grads")
            #expect(Set(expectedGrads.keys) == Set(conv.parameters.map(\.name)), "\(label) parameters")
            for parameter in conv.parameters {
                let expected = try expectedGrads.tensor(parameter.name)
                #expect(parameter.shape == expected.shape, "\(label) \(parameter.name) shape")
                let error = maxAbsError(parameter.gradient.array, expected.data)
                #expect(error <= layerTolerance * scaleOf(expected.data), "\(label) grad \(parameter.name): max abs error \(error)")
                errors.append(("grad \(parameter.name)", error))
            }
            reportErrors("layers.json conv2d (\(label))", errors)
        }
    }

    @Test("conv2d computes the convolution of its definition, whatever the method", arguments: ConvCase.all)
    func matchesDefinition(configuration: ConvCase) throws {
        let conv = configuration.make(seed: 21)
        var generator = SeededGenerator(seed: 22)
        let x = randomTensor([3] + configuration.inputShape, generator: &generator)
        let y = conv.forward(x, isTraining: false)
        #expect(y.shape == [3] + conv.outputShape)
        #expect(maxAbsError(y.array, convolutionByDefinition(conv, x)) <= 1e-5)
    }

    @Test("conv2d gradients match central differences", arguments: ConvCase.all)
    func gradientCheck(configuration: ConvCase) throws {
        let conv = configuration.make(seed: 31)
        var generator = SeededGenerator(seed: 32)
        let x = randomTensor([configuration.batch] + configuration.inputShape, generator: &generator)
        let errors = checkLayerGradients(conv, input: x, seed: 33)
        #expect(Set(errors.keys) == Set(["input"] + conv.parameters.map(\.name)))
        let sorted = errors.sorted { $0.key < $1.key }
        for (name, error) in sorted {
            #expect(error <= gradientCheckTolerance, "\(configuration.name) \(name): relative error \(error)")
        }
        reportErrors("gradient check conv2d (\(configuration.name))", sorted.map { ($0.key, $0.value) })
    }

    @Test("conv2d with a fused relu passes the gradient check away from the kink, for each method",
          arguments: [ConvCase.all[1], ConvCase.all[5], ConvCase.all[8]])
    func gradientCheckWithRelu(configuration: ConvCase) throws {
        // Redraw until every pre-activation is ≥ 0.05 from 0: a step of 1e-2 in one x (|w| ≤ 1/√K ≤ 1) or one
        // W or b (|x| ≤ 3) moves z by at most 0.03, so no central difference straddles the kink.
        for attempt in UInt64(1)...2000 {
            let conv = configuration.make(activation: .relu, seed: attempt)
            var generator = SeededGenerator(seed: attempt, purpose: "relu-check")
            let x = randomTensor([1] + configuration.inputShape, in: -3...3, generator: &generator)
            let z = convolutionByDefinition(conv, x)
            guard z.allSatisfy({ abs($0) >= 0.05 }), z.contains(where: { $0 > 0 }), z.contains(where: { $0 < 0 }) else { continue }
            let errors = checkLayerGradients(conv, input: x, seed: attempt)
            let sorted = errors.sorted { $0.key < $1.key }
            for (name, error) in sorted {
                #expect(error <= gradientCheckTolerance, "\(configuration.name) relu \(name): relative error \(error)")
            }
            reportErrors("gradient check conv2d+relu (\(configuration.name), draw \(attempt))", sorted.map { ($0.key, $0.value) })
            return
        }
        Issue.record("no kink-free draw found for \(configuration.name)")
    }

    @Test("conv2d with a fused activation equals conv2d(linear) followed by the activation layer",
          arguments: ActivationFunction.allCases)
    func fusedActivationEqualsSeparateLayers(function: ActivationFunction) throws {
        // One configuration per method: im2col (batched), pointwise, direct.
        for configuration in [ConvCase.all[1], ConvCase.all[6], ConvCase.all[8]] {
            let fused = configuration.make(activation: function, seed: 41)
            let linear = configuration.make(seed: 41)
            let activation = ActivationLayer(function, inputShape: linear.outputShape)
            #expect(fused.weight.value.array == linear.weight.value.array)

            var data = SeededGenerator(seed: 42)
            let x = randomTensor([3] + configuration.inputShape, in: -3...3, generator: &data)
            let dy = randomTensor([3] + fused.outputShape, generator: &data)
            for parameter in fused.parameters + linear.parameters { parameter.zeroGradient() }

            let fusedOutput = fused.forward(x, isTraining: true).array
            let separateOutput = activation.forward(linear.forward(x, isTraining: true), isTraining: true).array
            #expect(maxAbsError(fusedOutput, separateOutput.map(Double.init)) <= 1e-5, "\(configuration.name) output")

            let fusedInputGradient = try #require(fused.backward(dy, needsInputGradient: true)).array
            let activationGradient = try #require(activation.backward(dy, needsInputGradient: true))
            let separateInputGradient = try #require(linear.backward(activationGradient, needsInputGradient: true)).array
            #expect(maxAbsError(fusedInputGradient, separateInputGradient.map(Double.init)) <= 1e-5, "\(configuration.name) dx")
            for (a, b) in zip(fused.parameters, linear.parameters) {
                #expect(maxAbsError(a.gradient.array, b.gradient.array.map(Double.init)) <= 1e-4, "\(configuration.name) grad \(a.name)")
            }
        }
    }

    @Test("im2col in one chunk, in chunks of several samples and per sample give the same results",
          arguments: [ConvCase.all[0], ConvCase.all[2], ConvCase.all[4]])
    func chunkingDoesNotChangeResults(configuration: ConvCase) throws {
        var data = SeededGenerator(seed: 51)
        let x = randomTensor([5] + configuration.inputShape, generator: &data)
        let dy = randomTensor([5] + configuration.make(seed: 52).outputShape, generator: &data)
        func run(samplesPerChunk: Int?) throws -> [[Float]] {
            let conv = configuration.make(activation: .silu, seed: 52)
            conv.samplesPerChunk = samplesPerChunk
            for parameter in conv.parameters { parameter.zeroGradient() }
            let y = conv.forward(x, isTraining: true).array
            let dx = try #require(conv.backward(dy, needsInputGradient: true)).array
            return [y, dx] + conv.parameters.map(\.gradient.array)
        }
        let whole = try run(samplesPerChunk: 5)
        // 2 per chunk leaves a last chunk of one sample.
        for samples in [nil, 1, 2, 3] as [Int?] {
            for (index, (a, b)) in zip(try run(samplesPerChunk: samples), whole).enumerated() {
                #expect(maxAbsError(a, b.map(Double.init)) <= 1e-5, "\(samples.map(String.init) ?? "default") per chunk, result \(index)")
            }
        }
    }

    @Test("a wide conv2d (dW over 4096 weights per group: one sgemm per chunk) matches the definition, in every chunking",
          arguments: [nil, 5, 2, 1] as [Int?])
    func wideLayerMatchesDefinition(samplesPerChunk: Int?) throws {
        var generator = SeededGenerator(seed: 91)
        let conv = Conv2D(inputShape: [8, 6, 6], filters: 64, kernel: (3, 3), padding: (1, 1), generator: &generator)
        conv.samplesPerChunk = samplesPerChunk
        let x = randomTensor([5, 8, 6, 6], generator: &generator)
        let dy = randomTensor([5, 64, 6, 6], generator: &generator)
        for parameter in conv.parameters { parameter.zeroGradient() }
        let y = conv.forward(x, isTraining: true)
        #expect(maxAbsError(y.array, convolutionByDefinition(conv, x)) <= 1e-5)
        let dx = try #require(conv.backward(dy, needsInputGradient: true))
        let expected = convolutionGradientsByDefinition(conv, x, dy)
        #expect(maxAbsError(dx.array, expected.dx) <= 1e-4)
        #expect(maxAbsError(conv.weight.gradient.array, expected.dW) <= 1e-4)
        #expect(maxAbsError(conv.bias!.gradient.array, expected.db) <= 1e-4)
    }

    @Test("conv2d's gradients equal the definition's for every configuration", arguments: ConvCase.all)
    func gradientsMatchDefinition(configuration: ConvCase) throws {
        let conv = configuration.make(seed: 95)
        var generator = SeededGenerator(seed: 96)
        let x = randomTensor([3] + configuration.inputShape, generator: &generator)
        let dy = randomTensor([3] + conv.outputShape, generator: &generator)
        for parameter in conv.parameters { parameter.zeroGradient() }
        _ = conv.forward(x, isTraining: true)
        let dx = try #require(conv.backward(dy, needsInputGradient: true))
        let expected = convolutionGradientsByDefinition(conv, x, dy)
        #expect(maxAbsError(dx.array, expected.dx) <= 1e-5)
        #expect(maxAbsError(conv.weight.gradient.array, expected.dW) <= 1e-5)
        if let bias = conv.bias { #expect(maxAbsError(bias.gradient.array, expected.db) <= 1e-5) }
    }

    @Test("conv2d gradients accumulate across backward calls after one forward", arguments: [
        (ConvCase.all[0], 3), (ConvCase.all[0], 1), (ConvCase.all[6], nil), (ConvCase.all[8], nil),
    ] as [(ConvCase, Int?)])
    func gradientsAccumulate(configuration: ConvCase, samplesPerChunk: Int?) throws {
        // In one chunk of 3, backward reuses forward's columns and then overwrites them with dcol: the second
        // backward must rebuild them.
        let conv = configuration.make(activation: .tanh, seed: 61)
        conv.samplesPerChunk = samplesPerChunk
        var generator = SeededGenerator(seed: 62)
        let x = randomTensor([3] + configuration.inputShape, generator: &generator)
        let dy = randomTensor([3] + conv.outputShape, generator: &generator)
        for parameter in conv.parameters { parameter.zeroGradient() }
        _ = conv.forward(x, isTraining: true)
        let firstInputGradient = try #require(conv.backward(dy, needsInputGradient: true)).array
        let once = conv.parameters.map(\.gradient.array)
        let secondInputGradient = try #require(conv.backward(dy, needsInputGradient: true)).array
        #expect(maxAbsError(secondInputGradient, firstInputGradient.map(Double.init)) <= 1e-6)
        for (parameter, single) in zip(conv.parameters, once) {
            #expect(maxAbsError(parameter.gradient.array, single.map { 2 * Double($0) }) <= 1e-5, "\(parameter.name)")
        }
    }

    @Test("conv2d without input gradient returns nil but still fills parameter gradients")
    func noInputGradient() throws {
        for configuration in [ConvCase.all[0], ConvCase.all[6], ConvCase.all[8]] {
            let conv = configuration.make(seed: 71)
            var generator = SeededGenerator(seed: 72)
            let x = randomTensor([2] + configuration.inputShape, generator: &generator)
            for parameter in conv.parameters { parameter.zeroGradient() }
            let y = conv.forward(x, isTraining: true)
            #expect(conv.backward(Tensor(shape: y.shape, repeating: 1), needsInputGradient: false) == nil)
            #expect(conv.weight.gradient.array.contains { $0 != 0 }, "\(configuration.name)")
            // db = Σ dy over batch and positions = 2·OH·OW per filter.
            let positions = Float(2 * conv.outputShape[1] * conv.outputShape[2])
            #expect(conv.bias?.gradient.array == Array(repeating: positions, count: conv.filters), "\(configuration.name)")
        }
    }

    @Test("conv2d reuses its buffers when the batch size changes, and a smaller batch computes correctly",
          arguments: [ConvCase.all[0], ConvCase.all[6], ConvCase.all[8]])
    func reusesBuffersAcrossBatchSizes(configuration: ConvCase) throws {
        let conv = configuration.make(activation: .gelu, seed: 81)
        let fresh = configuration.make(activation: .gelu, seed: 81)
        var generator = SeededGenerator(seed: 82)
        let large = randomTensor([6] + configuration.inputShape, generator: &generator)
        let small = randomTensor([2] + configuration.inputShape, generator: &generator)
        let dySmall = randomTensor([2] + conv.outputShape, generator: &generator)

        let largeOutput = conv.forward(large, isTraining: true)
        let base = largeOutput.pointer
        let largeInputGradient = try #require(conv.backward(randomTensor([6] + conv.outputShape, generator: &generator),
                                                            needsInputGradient: true))
        let gradientBase = largeInputGradient.pointer
        for parameter in conv.parameters + fresh.parameters { parameter.zeroGradient() }

        let smallOutput = conv.forward(small, isTraining: true)
        #expect(smallOutput === largeOutput)
        #expect(smallOutput.pointer == base)
        #expect(smallOutput.shape == [2] + conv.outputShape)
        let smallInputGradient = try #require(conv.backward(dySmall, needsInputGradient: true))
        #expect(smallInputGradient === largeInputGradient)
        #expect(smallInputGradient.pointer == gradientBase)
        #expect(smallInputGradient.shape == [2] + configuration.inputShape)

        let expectedOutput = fresh.forward(small, isTraining: true).array
        let expectedInputGradient = try #require(fresh.backward(dySmall, needsInputGradient: true)).array
        #expect(smallOutput.array == expectedOutput)
        #expect(smallInputGradient.array == expectedInputGradient)
        for (a, b) in zip(conv.parameters, fresh.parameters) { #expect(a.gradient.array == b.gradient.array, "\(a.name)") }

        // Growing back reuses too.
        #expect(conv.forward(large, isTraining: true) === largeOutput)
    }

    @Test("conv2d initializes like torch's Conv2d: W, b uniform in ±1/√(C/groups·kh·kw), reproducibly")
    func initialization() {
        var first = SeededGenerator(seed: 9)
        var second = SeededGenerator(seed: 9)
        let a = Conv2D(inputShape: [8, 10, 10], filters: 6, kernel: (3, 2), groups: 2, generator: &first)
        let b = Conv2D(inputShape: [8, 10, 10], filters: 6, kernel: (3, 2), groups: 2, generator: &second)
        #expect(a.weight.value.array == b.weight.value.array)
        #expect(a.bias?.value.array == b.bias?.value.array)
        #expect(a.weight.shape == [6, 4, 3, 2])
        #expect(a.bias?.shape == [6])
        #expect(a.parameters.map(\.name) == ["weight", "bias"])
        #expect(a.weight.isWeight && !a.bias!.isWeight)
        let bound = 1 / Float(4 * 3 * 2).squareRoot()
        #expect(a.weight.value.array.allSatisfy { abs($0) <= bound })
        #expect(a.bias!.value.array.allSatisfy { abs($0) <= bound })
        // The draws spread over the interval rather than bunching near 0.
        #expect((a.weight.value.array.map(abs).max() ?? 0) > 0.8 * bound)
        var third = SeededGenerator(seed: 9)
        let depthwise = Conv2D(inputShape: [3, 5, 5], filters: 3, kernel: (3, 3), groups: 3, hasBias: false, generator: &third)
        #expect(depthwise.parameters.map(\.name) == ["weight"])
        #expect(depthwise.weight.shape == [3, 1, 3, 3])
    }

    @Test("output size follows torch's floor formula")
    func outputShape() {
        var generator = SeededGenerator(seed: 1)
        #expect(Conv2D(inputShape: [2, 7, 6], filters: 3, kernel: (3, 2), stride: (2, 2), padding: (1, 0),
                       generator: &generator).outputShape == [3, 4, 3])
        #expect(Conv2D(inputShape: [1, 28, 28], filters: 32, kernel: (3, 3), padding: (1, 1),
                       generator: &generator).outputShape == [32, 28, 28])
        #expect(Conv2D(inputShape: [3, 224, 224], filters: 8, kernel: (3, 3), stride: (2, 2), padding: (1, 1),
                       generator: &generator).outputShape == [8, 112, 112])
        #expect(Conv2D(inputShape: [3, 5, 5], filters: 1, kernel: (5, 5), generator: &generator).outputShape == [1, 1, 1])
    }

    @Test("same padding is (k − 1)/2 for odd kernels, keeps the size at stride 1, and is refused for even kernels")
    func samePadding() {
        #expect(Conv2D.samePadding(kernel: (3, 3))! == (1, 1))
        #expect(Conv2D.samePadding(kernel: (5, 1))! == (2, 0))
        #expect(Conv2D.samePadding(kernel: (2, 3)) == nil)
        #expect(Conv2D.samePadding(kernel: (3, 4)) == nil)
        var generator = SeededGenerator(seed: 1)
        for kernel in [(1, 1), (3, 3), (5, 3), (7, 7)] {
            let conv = Conv2D(inputShape: [2, 9, 8], filters: 3, kernel: kernel, padding: Conv2D.samePadding(kernel: kernel)!,
                              generator: &generator)
            #expect(conv.outputShape == [3, 9, 8], "kernel \(kernel)")
        }
    }

    @Test("configurationProblem names what is wrong and accepts what is right")
    func configurationProblems() throws {
        func problem(_ inputShape: [Int], filters: Int = 4, kernel: (Int, Int) = (3, 3), stride: (Int, Int) = (1, 1),
                     padding: (Int, Int) = (0, 0), groups: Int = 1) -> String? {
            Conv2D.configurationProblem(inputShape: inputShape, filters: filters, kernel: kernel, stride: stride,
                                        padding: padding, groups: groups)
        }
        #expect(problem([3, 8, 8]) == nil)
        #expect(problem([4, 8, 8], groups: 4) == nil)
        #expect(try #require(problem([3, 8, 8], groups: 2)).contains("groups 2 must divide"))
        #expect(try #require(problem([4, 8, 8], filters: 6, groups: 4)).contains("must divide"))
        #expect(try #require(problem([3, 2, 8])).contains("larger than the padded input"))
        #expect(problem([3, 2, 8], padding: (1, 0)) == nil)
        #expect(try #require(problem([8, 8])).contains("[channels, height, width]"))
        #expect(try #require(problem([3, 8, 8], stride: (0, 1))).contains("stride"))
        #expect(try #require(problem([3, 8, 8], padding: (-1, 0))).contains("padding"))
        #expect(try #require(problem([3, 8, 8], filters: 0)).contains("filters"))
    }

    @Test("flopsPerSample counts 2·O·(C/groups)·kh·kw·OH·OW")
    func flops() {
        var generator = SeededGenerator(seed: 1)
        let conv = Conv2D(inputShape: [32, 14, 14], filters: 64, kernel: (3, 3), padding: (1, 1), generator: &generator)
        #expect(conv.flopsPerSample == 2 * 64 * 32 * 9 * 196)
        let grouped = Conv2D(inputShape: [4, 4, 4], filters: 6, kernel: (1, 1), groups: 2, generator: &generator)
        #expect(grouped.flopsPerSample == 2 * 6 * 2 * 16)
    }
}
