import Compression
import Datasets
import Foundation
import NeuralNetwork
import ONNX
import Tensors
import Testing
import Training

/// The ONNX exporter layer by layer: models with random weights (and normalization statistics moved away from
/// the identity) built in the test, exported, checked by `onnx.checker` and run by onnxruntime, whose outputs
/// must equal `TrainedModel.predict`'s. Regression heads, so the raw network outputs are compared.
@Suite("ONNX export of every layer type, activation and quantization grid")
struct ONNXLayerExportTests {
    static let tolerance = 1e-4
    static let quantizedTolerance = 1e-3

    /// A model of `layers` (JSON) with random weights; with `standardize`, a random per-feature standardization.
    static func model(_ layers: String, inputShape: [Int], loss: LossSpec = .mse, task: LearningTask = .regression,
                      classes: [String]? = nil, standardize: Bool = true, seed: UInt64 = 1) throws -> TrainedModel {
        let diagnostics = SpecDiagnostics()
        let json = try parsedJSON(#"{"input_shape": \#(inputShape), "layers": \#(layers)}"#)
        let parsed = ModelSpec.parse(json, path: "model", diagnostics: diagnostics)
        let spec = try #require(parsed, "\(diagnostics.issues)")
        try #require(spec.summarize(inputShape: inputShape, diagnostics: diagnostics) != nil, "\(diagnostics.issues)")
        let network = Network(spec: spec, seed: seed)
        var random = SeededGenerator(seed: seed, purpose: "onnx-test")
        // Biases, γ and β random; running statistics away from (0, 1): the export must carry every one of them.
        for parameter in network.parameters where !parameter.isWeight {
            for i in 0..<parameter.count { parameter.value[i] += random.uniform(-0.3, 0.3) }
        }
        for buffer in network.namedBuffers {
            let tensor = buffer.tensor
            if buffer.name.hasSuffix("running_mean") { for i in 0..<tensor.count { tensor[i] = random.uniform(-0.5, 0.5) } }
            if buffer.name.hasSuffix("running_var") { for i in 0..<tensor.count { tensor[i] = random.uniform(0.5, 2) } }
        }
        let features = inputShape.reduce(1, *)
        let standardization = standardize
            ? Standardization(mean: (0..<features).map { _ in random.normal() * 3 }, std: (0..<features).map { _ in random.uniform(0.5, 4) })
            : nil
        return TrainedModel(network: network, standardization: standardization, classes: classes, task: task, loss: loss)
    }

    /// `count` input rows in the data's units: around the standardization's mean, or token indices below `tokens`.
    static func inputs(for model: TrainedModel, count: Int = 16, tokens: Int? = nil, seed: UInt64 = 2) -> [[Double]] {
        var random = SeededGenerator(seed: seed, purpose: "onnx-inputs")
        return (0..<count).map { _ in
            (0..<model.inputCount).map { j in
                if let tokens { return Double(Int(random.nextFloat() * Float(tokens)) % tokens) }
                guard let s = model.standardization else { return Double(random.normal()) }
                return Double(s.mean[j] + s.std[j] * random.normal())
            }
        }
    }

    /// A model to export and compare, on `inputs`, within `tolerance`.
    struct Case {
        var model: TrainedModel
        var inputs: [[Double]]
        var label: String
        var tolerance: Double = ONNXLayerExportTests.tolerance
        /// False: onnxruntime's optimized graph is reported, not held to `tolerance` (see `integerKernelsAreExact`).
        var holdsOptimizedGraph = true
    }

    /// Whether onnxruntime's fused 8-bit integer kernels compute exactly on this host. On x86-64 without VNNI
    /// they multiply with VPMADDUBSW, whose 16-bit sums saturate (onnxruntime's quantization guide says so);
    /// with VNNI (or elsewhere) they are exact. The unoptimized graph — the file as exported — is held exactly everywhere.
    static let integerKernelsAreExact: Bool = {
        #if arch(x86_64)
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return flags.contains("avx512_vnni") || flags.contains("avx_vnni")
        #else
        return true
        #endif
    }()

    /// Exports every case, runs them in one onnxruntime process (default graph optimizations, and none) and expects
    /// the output `/predict` reports (`outputs` or `probabilities`) within each case's tolerance of `predict`.
    @discardableResult
    static func expectSameOutputs(_ cases: [Case], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [ONNXRuntime.Run] {
        let files = try cases.map { item in
            let file = try ONNXExport.export(item.model, name: item.label)
            // ONNX_DUMP=<folder> keeps each exported file there, to open in Netron or onnx.helper.
            if let dump = ProcessInfo.processInfo.environment["ONNX_DUMP"] { try file.write(to: URL(fileURLWithPath: "\(dump)/\(item.label).onnx")) }
            return file
        }
        let runs = try await ONNXRuntime.run(zip(files, cases).map { ($0, $1.inputs) })
        try #require(runs.count == cases.count, sourceLocation: sourceLocation)
        for (item, run) in zip(cases, runs) {
            let expected = try item.model.predict(item.inputs).outputs
            let outputName = item.model.task == .classification ? "probabilities" : "outputs"
            for (optimized, outputs) in [(true, run.outputs), (false, run.unoptimizedOutputs)] {
                let actual = try #require(outputs[outputName], "\(item.label): outputs \(run.outputNames)", sourceLocation: sourceLocation)
                let difference = ONNXRuntime.maxDifference(expected, actual)
                print("ONNX \(item.label)\(optimized ? "" : " (no graph optimizations)"): max |onnxruntime − predict| = \(difference)")
                if optimized, !item.holdsOptimizedGraph { continue }
                #expect(difference <= item.tolerance, "\(item.label), optimized \(optimized): max difference \(difference)",
                        sourceLocation: sourceLocation)
            }
            #expect(run.opset == 17, sourceLocation: sourceLocation)
        }
        return runs
    }

    // MARK: Layers

    static let denseLayers = """
        [{"type": "dense", "units": 12, "activation": "relu"},
         {"type": "dense", "units": 12, "activation": "leaky_relu"},
         {"type": "dropout", "rate": 0.3},
         {"type": "dense", "units": 12, "activation": "relu6"},
         {"type": "batch_norm"},
         {"type": "dense", "units": 12, "activation": "elu", "bias": false},
         {"type": "layer_norm"},
         {"type": "dense", "units": 12, "activation": "gelu"},
         {"type": "residual", "layers": [{"type": "dense", "units": 12, "activation": "silu"}, {"type": "activation", "name": "tanh"}]},
         {"type": "activation", "name": "sigmoid"},
         {"type": "dense", "units": 12, "activation": "softplus"},
         {"type": "reshape", "shape": [3, 2, 2]},
         {"type": "channel_shuffle", "groups": 3},
         {"type": "flatten"},
         {"type": "dense", "units": 3}]
        """

    @Test("Dense layers with every activation, batch and layer norm, dropout, a residual block and a reshape export exactly")
    func denseLayers() async throws {
        let model = try Self.model(Self.denseLayers, inputShape: [7])
        let run = try await Self.expectSameOutputs([Case(model: model, inputs: Self.inputs(for: model), label: "dense stack")])[0]
        #expect(run.ops.isSuperset(of: ["Sub", "Div", "Gemm", "Relu", "LeakyRelu", "Clip", "Elu", "Erf", "Sigmoid", "Tanh", "Softplus",
                                        "BatchNormalization", "LayerNormalization", "Add", "Reshape", "Transpose", "Flatten"]),
                "\(run.ops.sorted())")
        #expect(run.inputShape == [7])
        #expect(run.outputNames == ["outputs"])
    }

    static let convolutionLayers = """
        [{"type": "conv2d", "filters": 6, "kernel": 3, "padding": "same", "groups": 3, "activation": "gelu"},
         {"type": "batch_norm"},
         {"type": "depthwise_conv2d", "kernel": [3, 1], "padding": [1, 0], "depth_multiplier": 2, "activation": "relu6"},
         {"type": "channel_shuffle", "groups": 3},
         {"type": "separable_conv2d", "filters": 12},
         {"type": "shuffle_unit", "out_channels": 12, "groups": 3, "stride": 1},
         {"type": "shuffle_unit", "out_channels": 24, "groups": 3, "stride": 2},
         {"type": "residual", "layers": [{"type": "conv2d", "filters": 24, "kernel": 3, "padding": 1, "activation": "silu"},
                                         {"type": "batch_norm"}]},
         {"type": "max_pool2d", "kernel": 3, "stride": 1},
         {"type": "conv2d", "filters": 8, "kernel": 1, "bias": false, "activation": "elu"},
         {"type": "avg_pool2d", "kernel": [2, 1], "stride": [1, 1]},
         {"type": "conv2d", "filters": 8, "kernel": 1, "stride": 1, "activation": "leaky_relu"},
         {"type": "max_pool2d", "kernel": [1, 2]},
         {"type": "global_avg_pool2d"},
         {"type": "dense", "units": 4, "activation": "tanh"}]
        """

    @Test("Convolutions (grouped, depthwise, padded), pooling, batch norm, separable and shuffle blocks and a residual export exactly")
    func convolutionLayers() async throws {
        let model = try Self.model(Self.convolutionLayers, inputShape: [3, 8, 8])
        let run = try await Self.expectSameOutputs([Case(model: model, inputs: Self.inputs(for: model, count: 8), label: "convolutions")])[0]
        #expect(run.ops.isSuperset(of: ["Conv", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Reshape",
                                        "Transpose", "Gemm"]), "\(run.ops.sorted())")
        #expect(run.inputShape == [3, 8, 8])
    }

    static let tokenLayers = """
        [{"type": "embedding", "num_embeddings": 11, "dim": 4},
         {"type": "lstm", "hidden_size": 5, "return_sequences": true},
         {"type": "layer_norm"},
         {"type": "gru", "hidden_size": 4, "return_sequences": true},
         {"type": "lstm", "hidden_size": 3},
         {"type": "dense", "units": 2}]
        """

    static let sequenceLayers = """
        [{"type": "gru", "hidden_size": 6, "return_sequences": true},
         {"type": "dropout", "rate": 0.1},
         {"type": "lstm", "hidden_size": 5},
         {"type": "dense", "units": 3, "activation": "tanh"}]
        """

    @Test("Embeddings, LSTMs and GRUs (every state and the last one) export exactly with ONNX's gate orders")
    func recurrentLayers() async throws {
        let tokens = try Self.model(Self.tokenLayers, inputShape: [6], standardize: false)
        let sequences = try Self.model(Self.sequenceLayers, inputShape: [5, 3])
        let runs = try await Self.expectSameOutputs([
            Case(model: tokens, inputs: Self.inputs(for: tokens, tokens: 11), label: "embedding → lstm → gru → lstm"),
            Case(model: sequences, inputs: Self.inputs(for: sequences), label: "gru → lstm"),
        ])
        #expect(runs[0].ops.isSuperset(of: ["Cast", "Gather", "LSTM", "GRU", "Squeeze", "Transpose", "LayerNormalization"]), "\(runs[0].ops.sorted())")
    }

    // MARK: Heads

    @Test("Cross-entropy models give probabilities and logits, BCE classifiers probabilities, regressions outputs")
    func outputHeads() async throws {
        let layers = #"[{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]"#
        let classifier = try Self.model(layers, inputShape: [4], loss: .crossEntropy(labelSmoothing: 0, classWeights: nil),
                                        task: .classification, classes: ["a", "b", "c"])
        let binary = try Self.model(#"[{"type": "dense", "units": 6, "activation": "tanh"}, {"type": "dense", "units": 1}]"#,
                                    inputShape: [4], loss: .bceWithLogits, task: .classification, classes: ["no", "yes"])
        let regression = try Self.model(layers, inputShape: [4], loss: .huber(delta: 1))
        let runs = try await Self.expectSameOutputs([
            Case(model: classifier, inputs: Self.inputs(for: classifier), label: "softmax classifier"),
            Case(model: binary, inputs: Self.inputs(for: binary), label: "sigmoid classifier"),
            Case(model: regression, inputs: Self.inputs(for: regression), label: "regression"),
        ])
        #expect(runs[0].outputNames == ["probabilities", "logits"])
        #expect(runs[0].metadata["classes"] == #"["a","b","c"]"#, "\(runs[0].metadata)")
        // The logits are what the softmax was taken of.
        for (logits, probabilities) in zip(runs[0].outputs["logits"] ?? [], runs[0].outputs["probabilities"] ?? []) {
            let exponentials = logits.map { exp($0 - logits.max()!) }
            let softmax = exponentials.map { $0 / exponentials.reduce(0, +) }
            #expect(ONNXRuntime.maxDifference([softmax], [probabilities]) < 1e-6)
        }
        #expect(runs[1].outputNames == ["probabilities", "logits"])
        #expect(runs[1].metadata["classes"] == #"["no","yes"]"#, "\(runs[1].metadata)")
        #expect(runs[2].outputNames == ["outputs"])
    }

    // MARK: Quantization

    struct Grid: CustomTestStringConvertible, Sendable {
        var bits: Int
        var scheme: QuantizationScheme
        var granularity: QuantizationGranularity
        var testDescription: String { "\(bits)-bit \(scheme.rawValue) \(granularity.rawValue)" }
    }

    static let grids = [
        Grid(bits: 8, scheme: .symmetric, granularity: .perChannel), Grid(bits: 8, scheme: .affine, granularity: .perTensor),
        Grid(bits: 4, scheme: .affine, granularity: .perChannel), Grid(bits: 2, scheme: .symmetric, granularity: .perTensor),
        Grid(bits: 1, scheme: .symmetric, granularity: .perChannel),
    ]

    /// `model` quantized as a `quantize` stage does it (activation grids calibrated on `inputs`, weights rounded onto
    /// `grid` and kept as codes), then saved and loaded: the model the server serves.
    static func quantized(_ model: TrainedModel, grid: Grid, calibration inputs: [[Double]]) throws -> TrainedModel {
        let network = model.network
        let quantizers = network.installActivationQuantizers()
        var features = inputs.flatMap { $0.map(Float.init) }
        model.standardization?.apply(to: &features, featureCount: model.inputCount)
        _ = network.forward(Tensor(shape: [inputs.count] + network.inputShape, values: features), isTraining: false)
        for quantizer in quantizers.values { quantizer.finishCalibration() }
        let weights = WeightQuantization(bits: grid.bits, scheme: grid.scheme, granularity: grid.granularity)
        model.quantization = ModelQuantization.quantizing(network, weights: weights, activationGrids: quantizers.compactMapValues(\.grid))
        return try TrainedModel.load(model.safetensors())
    }

    @Test("Quantized weights export as integer codes through DequantizeLinear and activations as QDQ pairs", arguments: grids)
    func quantizedModels(grid: Grid) async throws {
        var cases: [Case] = []
        var floatBytes: [Int] = []
        for (name, layers, shape) in [("convolutions", Self.convolutionLayers, [3, 8, 8]), ("gru → lstm", Self.sequenceLayers, [5, 3]),
                                      ("dense stack", Self.denseLayers, [7])] {
            let float = try Self.model(layers, inputShape: shape)
            let inputs = Self.inputs(for: float, count: 12)
            floatBytes.append(try ONNXExport.export(float).count)
            cases.append(Case(model: try Self.quantized(float, grid: grid, calibration: inputs), inputs: inputs,
                              label: "\(name), \(grid.testDescription)", tolerance: Self.quantizedTolerance,
                              holdsOptimizedGraph: grid.bits != 8 || Self.integerKernelsAreExact))
        }
        let runs = try await Self.expectSameOutputs(cases)
        for (index, (item, run)) in zip(cases, runs).enumerated() {
            #expect(run.ops.contains("DequantizeLinear"), "\(item.label): \(run.ops.sorted())")
            if !item.label.hasPrefix("gru") {
                #expect(run.ops.contains("QuantizeLinear"), "\(item.label): activations entering dense/conv2d: \(run.ops.sorted())")
            }
            // Every weight matrix and filter bank is stored as its integer codes, none as floats.
            for (weight, _) in WeightQuantization.quantizableParameters(of: item.model.network) {
                #expect(["INT8", "UINT8"].contains(run.initializers["\(weight).codes"]?.type ?? "none"),
                        "\(item.label): \(weight): \(run.initializers.keys.sorted())")
                #expect(run.initializers[weight] == nil, "\(item.label): \(weight) is also stored in float")
            }
            print("ONNX \(item.label): \(try ONNXExport.export(item.model).count) bytes, float \(floatBytes[index]) bytes")
        }
    }

    // MARK: Refusals

    @Test("A model the exporter cannot express is refused with an error naming the layer, not written")
    func refusal() throws {
        let float = try Self.model(#"[{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 2}]"#, inputShape: [3])
        let model = try Self.quantized(float, grid: Grid(bits: 8, scheme: .symmetric, granularity: .perTensor),
                                       calibration: Self.inputs(for: float))
        // A 16-bit activation grid in front of the second layer: QuantizeLinear holds at most 8 bits.
        var quantization = try #require(model.quantization)
        let grid = try #require(quantization.activationGrids[1])
        quantization.activationGrids[1] = QuantizationParameters(bits: 8, scheme: .affine, quantMin: 0, quantMax: 65535,
                                                                 scales: grid.scales, zeroPoints: grid.zeroPoints)
        model.quantization = quantization
        #expect(throws: ONNXExportError.self) { try ONNXExport.export(model) }
        do {
            _ = try ONNXExport.export(model)
        } catch {
            #expect(error.path == "model.layers[1]")
            #expect(error.layerType == "dense")
            #expect(error.description.contains("model.layers[1] (dense)"), "\(error)")
        }
    }
}
