import Compression
import NeuralNetwork
import Tensors
import Training

/// Writes a `Network`'s layers as standard ONNX operators (opset 17), each computing what the layer's
/// `forward(isTraining: false)` computes:
///
/// | layer | ONNX |
/// |---|---|
/// | `dense` | Flatten (axis 1, for a multi-dimensional sample: ours takes the whole sample as a vector) → Gemm (transB = 1) |
/// | `conv2d`, `depthwise_conv2d` | Conv (pads on both sides, strides, group; depthwise: group = C) |
/// | `separable_conv2d` | Conv (depthwise) → BatchNormalization → Relu → Conv (1×1) → BatchNormalization → Relu |
/// | `shuffle_unit` | Conv (grouped 1×1) → BN → Relu → channel shuffle → Conv (depthwise 3×3) → BN → Conv (grouped 1×1) → BN, then Add x (stride 1) or Concat(AveragePool 3×3/2 pad 1 counting pads, branch) (stride 2) → Relu |
/// | `channel_shuffle` | Reshape (N, g, C/g, S) → Transpose (0, 2, 1, 3) → Reshape (N, C, …) |
/// | `max_pool2d`, `avg_pool2d` | MaxPool, AveragePool (no padding, floor mode) |
/// | `global_avg_pool2d` | GlobalAveragePool → Flatten |
/// | `batch_norm` | BatchNormalization (inference: running statistics, ε = 1e-5) on (N, F), (N, C, L) or (N, C, H, W) |
/// | `layer_norm` | LayerNormalization (last axis, ε = 1e-5) |
/// | `flatten`, `reshape` | Flatten (axis 1), Reshape (0 = keep the batch) |
/// | `embedding` | Cast (float indices → int64) → Gather (axis 0) |
/// | `lstm` | Transpose to (T, N, I) → LSTM (gates reordered from torch's i, f, g, o to ONNX's i, o, f, c) → Squeeze/Transpose |
/// | `gru` | Transpose → GRU (gates reordered from torch's r, z, n to ONNX's z, r, h; `linear_before_reset = 1`, torch's n) → Squeeze/Transpose |
/// | `residual` | the inner layers, then Add(x, f(x)) |
/// | `dropout` | nothing (the identity at inference) |
/// | activations | Relu, LeakyRelu (α 0.01), Clip [0, 6], Elu (α 1), x·½(1 + Erf(x/√2)), x·Sigmoid(x), Tanh, Sigmoid, Softplus |
///
/// Quantized weights (a `quantize` stage) are stored as their integer codes — int8 for symmetric grids, uint8
/// for affine ones, one code per byte — and go through DequantizeLinear (per tensor, or per output channel along
/// axis 0) into the operator, so the file stays about a quarter of the float one and computes the same
/// (q − zero_point)·scale our model computes. 4- and 2-bit codes are unpacked into int8/uint8 (opset 17 has no
/// 4-bit type; ONNX's int4 needs opset 21, which few runtimes run): still QDQ, one byte per weight. Binary
/// weights (α·sign W) are int8 ±1 codes with scale α per output channel. The 8-bit activation grids in front
/// of each top-level dense/conv2d layer become QuantizeLinear → DequantizeLinear pairs.
struct NetworkGraph {
    var graph = GraphBuilder()
    /// Prepended to initializer names, so they are the safetensors names (`generator.` for a GAN's generator).
    let tensorPrefix: String
    private let parameters: [String: Parameter]
    private let buffers: [String: Tensor]
    private let codes: [String: QuantizedTensor]
    /// The activation grids in front of top-level layers, by layer index.
    private let activationGrids: [Int: QuantizationParameters]
    private var constants: [String: String] = [:]
    /// In a quantized model, dense and conv2d biases are an Add after the Gemm/Conv rather than its third input:
    /// onnxruntime's QDQ transformers (from its basic optimization level on) requantize a float bias of a Gemm/Conv
    /// whose inputs come from DequantizeLinear to int32 at scale s_x·s_w, moving it by up to half that step
    /// (1.4e-3 at the output of a 2-bit model in the tests). Ours stays float, and so does a bias added on its own.
    private let addsBiasSeparately: Bool

    /// ε of the batch and layer normalizations `Network` builds (their initializers' defaults).
    static let normalizationEpsilon: Float = 1e-5
    /// leaky_relu's slope, the layers' default (torch's).
    static let leakySlope: Float = 0.01

    init(network: Network, quantization: ModelQuantization?, tensorPrefix: String = "") {
        self.tensorPrefix = tensorPrefix
        parameters = Dictionary(network.namedParameters.map { ($0.name, $0.parameter) }, uniquingKeysWith: { first, _ in first })
        buffers = Dictionary(network.namedBuffers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        codes = quantization?.codes ?? [:]
        activationGrids = quantization?.activationGrids ?? [:]
        addsBiasSeparately = quantization != nil
    }

    /// Where the exporter is: the layer's spec path and type, for errors.
    struct Location {
        var path: String
        var type: String
        func fail(_ reason: String) -> ONNXExportError { ONNXExportError(path: path, layerType: type, reason: reason) }
    }

    // MARK: Layers

    /// The top-level layers on `input` (per-sample `shape`); returns the output value and its per-sample shape.
    mutating func network(_ spec: ModelSpec, input: String, shape: [Int]) throws(ONNXExportError) -> (value: String, shape: [Int]) {
        try layers(spec.layers, input: input, shape: shape, prefix: "layers", path: "model.layers", isTopLevel: true)
    }

    private mutating func layers(_ specs: [LayerSpec], input: String, shape: [Int], prefix: String, path: String,
                                 isTopLevel: Bool) throws(ONNXExportError) -> (value: String, shape: [Int]) {
        var value = input, shape = shape
        for (index, spec) in specs.enumerated() {
            let location = Location(path: "\(path)[\(index)]", type: spec.typeName)
            if isTopLevel, let grid = activationGrids[index] {
                value = try fakeQuantize(value, grid: grid, name: "\(prefix).\(index)/input_quantized", at: location)
            }
            (value, shape) = try layer(spec, input: value, shape: shape, prefix: "\(prefix).\(index)", at: location)
        }
        return (value, shape)
    }

    private mutating func layer(_ spec: LayerSpec, input x: String, shape: [Int], prefix p: String,
                                at location: Location) throws(ONNXExportError) -> (value: String, shape: [Int]) {
        let outputShape = try Self.outputShape(of: spec, input: shape, at: location)
        switch spec {
        case .dense(_, let activation, let hasBias):
            let flat = shape.count > 1 ? graph.op("Flatten", [x], [.int("axis", 1)], name: "\(p)/flatten") : x
            let weight = try self.weight("\(p).weight", at: location)
            var inputs = [flat, weight]
            if hasBias && !addsBiasSeparately { inputs.append(try tensor("\(p).bias", at: location)) }
            var z = graph.op("Gemm", inputs, [.int("transB", 1)], name: "\(p)/gemm")
            if hasBias && addsBiasSeparately { z = graph.op("Add", [z, try tensor("\(p).bias", at: location)], name: "\(p)/bias") }
            return (self.activation(activation, z, name: p), outputShape)

        case .dropout:
            return (x, outputShape)

        case .activation(let function):
            return (self.activation(function, x, name: p), outputShape)

        case .conv2d(_, let kernel, let stride, let padding, let groups, let hasBias, let activation):
            let z = try conv(x, weight: "\(p).weight", bias: hasBias ? "\(p).bias" : nil, kernel: kernel, stride: stride,
                             padding: padding.amount(kernel: kernel), groups: groups, name: "\(p)/conv", at: location)
            return (self.activation(activation, z, name: p), outputShape)

        case .depthwiseConv2d(let kernel, let stride, let padding, _, let hasBias, let activation):
            let z = try conv(x, weight: "\(p).weight", bias: hasBias ? "\(p).bias" : nil, kernel: kernel, stride: stride,
                             padding: padding.amount(kernel: kernel), groups: shape[0], name: "\(p)/conv", at: location)
            return (self.activation(activation, z, name: p), outputShape)

        case .separableConv2d(_, let kernel, let stride, let padding):
            // SeparableConv2D's chain: depthwise (no bias) → bn1 → relu1 → pointwise 1×1 (no bias) → bn2 → relu2.
            var y = try conv(x, weight: "\(p).depthwise.weight", bias: nil, kernel: kernel, stride: stride,
                             padding: padding.amount(kernel: kernel), groups: shape[0], name: "\(p)/depthwise", at: location)
            y = try batchNorm(y, prefix: "\(p).bn1", name: "\(p)/bn1", at: location)
            y = graph.op("Relu", [y], name: "\(p)/relu1")
            y = try conv(y, weight: "\(p).pointwise.weight", bias: nil, kernel: .square(1), stride: .square(1),
                         padding: Size2D(0, 0), groups: 1, name: "\(p)/pointwise", at: location)
            y = try batchNorm(y, prefix: "\(p).bn2", name: "\(p)/bn2", at: location)
            return (graph.op("Relu", [y], name: "\(p)/relu2"), outputShape)

        case .shuffleUnit(_, let groups, let stride):
            // ShuffleUnit's branch: conv1 (grouped 1×1) → bn1 → relu → shuffle → conv2 (depthwise 3×3, stride,
            // padding 1) → bn2 → conv3 (grouped 1×1) → bn3.
            guard let bottleneck = parameters["\(p).conv2.weight"]?.shape.first else {
                throw location.fail("its tensor \(tensorPrefix)\(p).conv2.weight is missing")
            }
            var b = try conv(x, weight: "\(p).conv1.weight", bias: nil, kernel: .square(1), stride: .square(1),
                             padding: Size2D(0, 0), groups: groups, name: "\(p)/conv1", at: location)
            b = try batchNorm(b, prefix: "\(p).bn1", name: "\(p)/bn1", at: location)
            b = graph.op("Relu", [b], name: "\(p)/relu")
            b = channelShuffle(b, groups: groups, shape: [bottleneck] + shape.dropFirst(), name: "\(p)/shuffle")
            b = try conv(b, weight: "\(p).conv2.weight", bias: nil, kernel: .square(3), stride: .square(stride),
                         padding: Size2D(1, 1), groups: bottleneck, name: "\(p)/conv2", at: location)
            b = try batchNorm(b, prefix: "\(p).bn2", name: "\(p)/bn2", at: location)
            b = try conv(b, weight: "\(p).conv3.weight", bias: nil, kernel: .square(1), stride: .square(1),
                         padding: Size2D(0, 0), groups: groups, name: "\(p)/conv3", at: location)
            b = try batchNorm(b, prefix: "\(p).bn3", name: "\(p)/bn3", at: location)
            let z: String
            if stride == 1 {
                z = graph.op("Add", [x, b], name: "\(p)/add")
            } else {
                // The shortcut: 3×3 average, stride 2, padding 1, padded zeros counted (torch's count_include_pad).
                let shortcut = graph.op("AveragePool", [x], [.ints("kernel_shape", [3, 3]), .ints("strides", [2, 2]),
                                                             .ints("pads", [1, 1, 1, 1]), .int("count_include_pad", 1)],
                                        name: "\(p)/shortcut")
                z = graph.op("Concat", [shortcut, b], [.int("axis", 1)], name: "\(p)/concat")
            }
            return (graph.op("Relu", [z], name: "\(p)/relu_out"), outputShape)

        case .channelShuffle(let groups):
            return (channelShuffle(x, groups: groups, shape: shape, name: p), outputShape)

        case .maxPool2d(let kernel, let stride):
            return (graph.op("MaxPool", [x], [.ints("kernel_shape", [kernel.height, kernel.width]),
                                               .ints("strides", [stride.height, stride.width])], name: "\(p)/maxpool"), outputShape)

        case .avgPool2d(let kernel, let stride):
            return (graph.op("AveragePool", [x], [.ints("kernel_shape", [kernel.height, kernel.width]),
                                                   .ints("strides", [stride.height, stride.width])], name: "\(p)/avgpool"), outputShape)

        case .globalAvgPool2d:
            let pooled = graph.op("GlobalAveragePool", [x], name: "\(p)/pool")
            return (graph.op("Flatten", [pooled], [.int("axis", 1)], name: "\(p)/flatten"), outputShape)

        case .batchNorm:
            return (try batchNorm(x, prefix: p, name: "\(p)/batchnorm", at: location), outputShape)

        case .layerNorm:
            let scale = try tensor("\(p).weight", at: location), bias = try tensor("\(p).bias", at: location)
            return (graph.op("LayerNormalization", [x, scale, bias], [.int("axis", -1), .float("epsilon", Self.normalizationEpsilon)],
                             name: "\(p)/layernorm"), outputShape)

        case .flatten:
            return (graph.op("Flatten", [x], [.int("axis", 1)], name: "\(p)/flatten"), outputShape)

        case .reshape:
            // 0 keeps the batch dimension; the per-sample sizes are all known (any −1 resolved).
            let target = graph.int64s([0] + outputShape, name: "\(p).shape")
            return (graph.op("Reshape", [x, target], name: "\(p)/reshape"), outputShape)

        case .embedding:
            // The indices arrive as float32 holding integers (ours refuses anything else): Cast truncates them exactly.
            let indices = graph.op("Cast", [x], [.int("to", Int(Onnx_TensorProto.DataType.int64.rawValue))], name: "\(p)/indices")
            let table = try weight("\(p).weight", at: location)
            return (graph.op("Gather", [table, indices], [.int("axis", 0)], name: "\(p)/gather"), outputShape)

        case .lstm(let hidden, let returnSequences):
            // torch's gate rows i, f, g, o → ONNX's i, o, f, c (c is torch's g).
            return (try recurrent("LSTM", x, prefix: p, hidden: hidden, gateOrder: [0, 3, 1, 2], returnSequences: returnSequences,
                                  attributes: [], at: location), outputShape)

        case .gru(let hidden, let returnSequences):
            // torch's r, z, n → ONNX's z, r, h; torch applies r to (W_hn·h + b_hn): linear_before_reset = 1.
            return (try recurrent("GRU", x, prefix: p, hidden: hidden, gateOrder: [1, 0, 2], returnSequences: returnSequences,
                                  attributes: [.int("linear_before_reset", 1)], at: location), outputShape)

        case .residual(let inner):
            let (branch, branchShape) = try layers(inner, input: x, shape: shape, prefix: "\(p).layers", path: "\(location.path).layers",
                                                   isTopLevel: false)
            guard branchShape == shape else { throw location.fail("its branch gives \(branchShape), not its input's \(shape)") }
            return (graph.op("Add", [x, branch], name: "\(p)/add"), outputShape)
        }
    }

    /// A layer's per-sample output shape, by the same rules that checked the spec.
    private static func outputShape(of spec: LayerSpec, input: [Int], at location: Location) throws(ONNXExportError) -> [Int] {
        let diagnostics = SpecDiagnostics()
        guard let summary = ModelSpec(inputShape: input, layers: [spec]).summarize(inputShape: input, diagnostics: diagnostics)?.first
        else { throw location.fail("it does not fit its input \(input): \(diagnostics.issues.map(\.message).joined(separator: "; "))") }
        return summary.outputShape
    }

    // MARK: Building blocks

    private mutating func conv(_ x: String, weight: String, bias: String?, kernel: Size2D, stride: Size2D, padding: Size2D,
                               groups: Int, name: String, at location: Location) throws(ONNXExportError) -> String {
        let w = try self.weight(weight, at: location)
        var inputs = [x, w]
        if let bias, !addsBiasSeparately { inputs.append(try tensor(bias, at: location)) }
        let z = graph.op("Conv", inputs, [
            .ints("kernel_shape", [kernel.height, kernel.width]),
            .ints("strides", [stride.height, stride.width]),
            .ints("pads", [padding.height, padding.width, padding.height, padding.width]),
            .ints("dilations", [1, 1]),
            .int("group", groups),
        ], name: name)
        guard let bias, addsBiasSeparately else { return z }
        let b = try parameter(bias, at: location)
        let perChannel = graph.floats(b.value.array, shape: [b.count, 1, 1], name: "\(tensorPrefix)\(bias)")
        return graph.op("Add", [z, perChannel], name: "\(name)_bias")
    }

    /// Inference-mode batch norm from `<prefix>.weight`, `.bias`, `.running_mean`, `.running_var`.
    private mutating func batchNorm(_ x: String, prefix: String, name: String, at location: Location) throws(ONNXExportError) -> String {
        let scale = try tensor("\(prefix).weight", at: location), bias = try tensor("\(prefix).bias", at: location)
        let mean = try buffer("\(prefix).running_mean", at: location), variance = try buffer("\(prefix).running_var", at: location)
        return graph.op("BatchNormalization", [x, scale, bias, mean, variance],
                        [.float("epsilon", Self.normalizationEpsilon), .float("momentum", 0.9)], name: name)
    }

    /// ChannelShuffle: x.view(N, g, C/g, S).transpose(1, 2).reshape(N, C, …).
    private mutating func channelShuffle(_ x: String, groups: Int, shape: [Int], name: String) -> String {
        let channels = shape[0], spatial = shape.dropFirst().reduce(1, *)
        let grouped = graph.int64s([0, groups, channels / groups, spatial], name: "\(name).grouped_shape")
        let back = graph.int64s([0] + shape, name: "\(name).shape")
        var y = graph.op("Reshape", [x, grouped], name: "\(name)/group")
        y = graph.op("Transpose", [y], [.ints("perm", [0, 2, 1, 3])], name: "\(name)/transpose")
        return graph.op("Reshape", [y, back], name: "\(name)/shuffled")
    }

    /// LSTM or GRU on batch-first x (N, T, I) from a zero state; `gateOrder[k]` is the torch gate block that goes
    /// to ONNX's k-th place.
    private mutating func recurrent(_ opType: String, _ x: String, prefix p: String, hidden: Int, gateOrder: [Int],
                                    returnSequences: Bool, attributes: [Onnx_AttributeProto],
                                    at location: Location) throws(ONNXExportError) -> String {
        let w = try weight("\(p).weight_ih_l0", rowBlocks: gateOrder, leadingUnitAxis: true, at: location)
        let r = try weight("\(p).weight_hh_l0", rowBlocks: gateOrder, leadingUnitAxis: true, at: location)
        let inputBias = try reorderedRows(try parameter("\(p).bias_ih_l0", at: location).value.array, rows: gateOrder.count * hidden,
                                          blocks: gateOrder)
        let recurrentBias = try reorderedRows(try parameter("\(p).bias_hh_l0", at: location).value.array, rows: gateOrder.count * hidden,
                                              blocks: gateOrder)
        let b = graph.floats(inputBias + recurrentBias, shape: [1, 2 * gateOrder.count * hidden], name: "\(tensorPrefix)\(p).bias")
        let timeMajor = graph.op("Transpose", [x], [.ints("perm", [1, 0, 2])], name: "\(p)/time_major")
        let outputs = graph.node(opType, [timeMajor, w, r, b], [.int("hidden_size", hidden)] + attributes, name: "\(p)/\(opType.lowercased())",
                                 outputs: 2)
        if returnSequences {
            // Y (T, 1, N, H) → (T, N, H) → (N, T, H).
            let squeezed = graph.op("Squeeze", [outputs[0], constantAxes([1])], name: "\(p)/sequence")
            return graph.op("Transpose", [squeezed], [.ints("perm", [1, 0, 2])], name: "\(p)/batch_first")
        }
        // Y_h (1, N, H) → (N, H).
        return graph.op("Squeeze", [outputs[1], constantAxes([0])], name: "\(p)/last")
    }

    /// y = f(x) for an activation function; `linear` adds nothing.
    mutating func activation(_ function: ActivationFunction, _ x: String, name: String) -> String {
        switch function {
        case .linear: return x
        case .relu: return graph.op("Relu", [x], name: "\(name)/relu")
        case .leaky_relu: return graph.op("LeakyRelu", [x], [.float("alpha", Self.leakySlope)], name: "\(name)/leaky_relu")
        case .relu6: return graph.op("Clip", [x, constant(0), constant(6)], name: "\(name)/relu6")
        case .elu: return graph.op("Elu", [x], [.float("alpha", 1)], name: "\(name)/elu")
        case .gelu:
            // Exact (erf) GELU as ours computes it: 0.5·x·(1 + erf(x·(1/√2))). (Gelu itself is opset 20.)
            let scaled = graph.op("Mul", [x, constant(0.70710678118654752)], name: "\(name)/gelu_scaled")
            let erf = graph.op("Erf", [scaled], name: "\(name)/gelu_erf")
            let onePlus = graph.op("Add", [erf, constant(1)], name: "\(name)/gelu_one_plus")
            let half = graph.op("Mul", [x, constant(0.5)], name: "\(name)/gelu_half")
            return graph.op("Mul", [half, onePlus], name: "\(name)/gelu")
        case .silu:
            let gate = graph.op("Sigmoid", [x], name: "\(name)/silu_gate")
            return graph.op("Mul", [x, gate], name: "\(name)/silu")
        case .tanh: return graph.op("Tanh", [x], name: "\(name)/tanh")
        case .sigmoid: return graph.op("Sigmoid", [x], name: "\(name)/sigmoid")
        case .softplus: return graph.op("Softplus", [x], name: "\(name)/softplus")
        }
    }

    // MARK: Quantization

    /// Activation fake-quantization as QuantizeLinear → DequantizeLinear: q = saturate(round_half_even(x / s) + zp)
    /// on uint8 ([0, 255], our 8-bit affine activations) or int8 ([−128, 127]). A narrower integer range inside one
    /// of those adds a Clip at its ends (clamping commutes with the monotone dequantization); a wider one has no
    /// 8-bit QDQ form and is refused.
    private mutating func fakeQuantize(_ x: String, grid: QuantizationParameters, name: String,
                                       at location: Location) throws(ONNXExportError) -> String {
        guard grid.scales.count == 1, grid.zeroPoints.count == 1 else {
            throw location.fail("its input quantizer has \(grid.scales.count) scales; an activation grid is per tensor")
        }
        let scale = grid.scales[0], zeroPoint = grid.zeroPoints[0]
        guard scale.isFinite, scale > 0 else { throw location.fail("its input quantizer's scale \(scale) is not a positive number") }
        let isUnsigned: Bool
        if grid.quantMin >= 0 && grid.quantMax <= 255 {
            isUnsigned = true
        } else if grid.quantMin >= -128 && grid.quantMax <= 127 {
            isUnsigned = false
        } else {
            throw location.fail("""
                its input is quantized onto the integer range [\(grid.quantMin), \(grid.quantMax)], which neither uint8 nor int8 \
                QuantizeLinear holds (QDQ export takes activation grids of at most 8 bits)
                """)
        }
        guard (grid.quantMin...grid.quantMax).contains(zeroPoint) else {
            throw location.fail("its input quantizer's zero point \(zeroPoint) lies outside [\(grid.quantMin), \(grid.quantMax)]")
        }
        let scaleName = graph.float(scale, name: "\(tensorPrefix)\(name).scale")
        let zeroPointName = isUnsigned ? graph.uint8s([UInt8(zeroPoint)], shape: [], name: "\(tensorPrefix)\(name).zero_point")
            : graph.int8s([Int8(zeroPoint)], shape: [], name: "\(tensorPrefix)\(name).zero_point")
        let q = graph.op("QuantizeLinear", [x, scaleName, zeroPointName], name: "\(name)/quantize")
        let y = graph.op("DequantizeLinear", [q, scaleName, zeroPointName], name: "\(name)/dequantize")
        let fullRange: ClosedRange<Int32> = isUnsigned ? 0...255 : -128...127
        guard grid.quantMin != fullRange.lowerBound || grid.quantMax != fullRange.upperBound else { return y }
        let low = Float(grid.quantMin - zeroPoint) * scale, high = Float(grid.quantMax - zeroPoint) * scale
        return graph.op("Clip", [y, graph.float(low, name: "\(tensorPrefix)\(name).min"), graph.float(high, name: "\(tensorPrefix)\(name).max")],
                        name: "\(name)/clip")
    }

    // MARK: Tensors

    private func parameter(_ name: String, at location: Location) throws(ONNXExportError) -> Parameter {
        guard let parameter = parameters[name] else { throw location.fail("its tensor \(tensorPrefix)\(name) is missing") }
        return parameter
    }

    /// A float parameter as an initializer of its own shape.
    private mutating func tensor(_ name: String, at location: Location) throws(ONNXExportError) -> String {
        let parameter = try parameter(name, at: location)
        return graph.floats(parameter.value.array, shape: parameter.shape, name: "\(tensorPrefix)\(name)")
    }

    private mutating func buffer(_ name: String, at location: Location) throws(ONNXExportError) -> String {
        guard let tensor = buffers[name] else { throw location.fail("its tensor \(tensorPrefix)\(name) is missing") }
        return graph.floats(tensor.array, shape: tensor.shape, name: "\(tensorPrefix)\(name)")
    }

    /// A weight as the operator's input: its float values, or — when the model stores it quantized — its integer
    /// codes through DequantizeLinear (the value is then named after the weight, the codes `<name>.codes`).
    /// `rowBlocks` reorders blocks of rows (recurrent gates: block k of the result is block `rowBlocks[k]`);
    /// `leadingUnitAxis` prepends a dimension of 1 (ONNX's num_directions).
    private mutating func weight(_ name: String, rowBlocks: [Int]? = nil, leadingUnitAxis: Bool = false,
                                 at location: Location) throws(ONNXExportError) -> String {
        let parameter = try parameter(name, at: location)
        let shape = parameter.shape, rows = shape[0]
        let outputShape = (leadingUnitAxis ? [1] : []) + shape
        let fullName = "\(tensorPrefix)\(name)"
        guard let quantized = codes[name] else {
            var values = parameter.value.array
            if let blocks = rowBlocks { values = try reorderedRows(values, rows: rows, blocks: blocks) }
            return graph.floats(values, shape: outputShape, name: fullName)
        }
        guard quantized.shape == shape else {
            throw location.fail("the codes of \(fullName) have shape \(quantized.shape), the weight \(shape)")
        }
        let count = parameter.count
        // Integer codes, one per weight, and the scale/zero point per channel (rows) or per tensor.
        var integers: [Int32]
        var scales: [Float]
        var zeroPoints: [Int32]
        var isUnsigned: Bool
        if let alphas = quantized.binaryScales {
            // α·sign W: code +1 for a set bit (non-negative weight), −1 otherwise; scale α per output channel.
            guard quantized.packed.count * 8 >= count, alphas.count == rows else {
                throw location.fail("the sign bits or scales of \(fullName) do not fit its \(count) weights in \(rows) rows")
            }
            integers = (0..<count).map { i in quantized.packed[i / 8] >> UInt8(i % 8) & 1 == 1 ? 1 : -1 }
            scales = alphas
            zeroPoints = Array(repeating: 0, count: alphas.count)
            isUnsigned = false
        } else if let grid = quantized.parameters {
            guard quantized.bits >= 2, quantized.bits <= 8, quantized.packed.count * 8 >= count * quantized.bits,
                  grid.scales.count == 1 || grid.scales.count == rows
            else { throw location.fail("the \(quantized.bits)-bit codes of \(fullName) do not fit its shape \(shape)") }
            integers = PackedCodes.unpack(quantized.packed, count: count, bits: quantized.bits, quantMin: grid.quantMin)
            scales = grid.scales
            zeroPoints = grid.zeroPoints
            if grid.quantMin >= 0 && grid.quantMax <= 255 {
                isUnsigned = true
            } else if grid.quantMin >= -128 && grid.quantMax <= 127 {
                isUnsigned = false
            } else {
                throw location.fail("the integer range [\(grid.quantMin), \(grid.quantMax)] of \(fullName) fits neither int8 nor uint8")
            }
        } else {
            throw location.fail("\(fullName) is marked quantized but has neither a grid nor binary scales")
        }
        if let blocks = rowBlocks {
            integers = try reorderedRows(integers, rows: rows, blocks: blocks)
            if scales.count == rows {
                scales = try reorderedRows(scales, rows: rows, blocks: blocks)
                zeroPoints = try reorderedRows(zeroPoints, rows: rows, blocks: blocks)
            }
        }
        let isPerChannel = scales.count > 1
        let parameterShape = isPerChannel ? [scales.count] : []
        let codesName = isUnsigned ? graph.uint8s(integers.map { UInt8(clamping: $0) }, shape: outputShape, name: "\(fullName).codes")
            : graph.int8s(integers.map { Int8(clamping: $0) }, shape: outputShape, name: "\(fullName).codes")
        let scaleName = graph.floats(scales, shape: parameterShape, name: "\(fullName).scale")
        let zeroPointName = isUnsigned ? graph.uint8s(zeroPoints.map { UInt8(clamping: $0) }, shape: parameterShape, name: "\(fullName).zero_point")
            : graph.int8s(zeroPoints.map { Int8(clamping: $0) }, shape: parameterShape, name: "\(fullName).zero_point")
        // The per-channel axis is the rows (output channels), one further with the leading unit axis.
        return graph.op("DequantizeLinear", [codesName, scaleName, zeroPointName],
                        isPerChannel ? [.int("axis", leadingUnitAxis ? 1 : 0)] : [], name: fullName)
    }

    /// `values` as `rows` rows split into `blocks.count` equal blocks, block k of the result being block `blocks[k]`.
    private func reorderedRows<T>(_ values: [T], rows: Int, blocks: [Int]) throws(ONNXExportError) -> [T] {
        let blockRows = rows / blocks.count, width = values.count / rows
        guard rows % blocks.count == 0, values.count % rows == 0 else {
            throw ONNXExportError(path: "model", layerType: nil, reason: "\(values.count) values do not split into \(blocks.count) gate blocks")
        }
        var result: [T] = []
        result.reserveCapacity(values.count)
        for block in blocks {
            result += values[(block * blockRows * width)..<((block + 1) * blockRows * width)]
        }
        return result
    }

    /// A float scalar initializer, made once per value.
    private mutating func constant(_ value: Float) -> String {
        let key = "float:\(value.bitPattern)"
        if let name = constants[key] { return name }
        let name = graph.float(value, name: "const_\(value)")
        constants[key] = name
        return name
    }

    /// Squeeze's axes (an input since opset 13), made once per list.
    private mutating func constantAxes(_ axes: [Int]) -> String {
        let key = "axes:\(axes)"
        if let name = constants[key] { return name }
        let name = graph.int64s(axes, name: "const_axes_\(axes.map(String.init).joined(separator: "_"))")
        constants[key] = name
        return name
    }
}
