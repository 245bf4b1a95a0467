/// The architecture of a sequential model, as in the job spec's `model` (API.md).
///
/// It is stored in the saved model's metadata, so it encodes to JSON with every default filled
/// in and parses back with the same reader that checks users' specs.
public struct ModelSpec: Sendable, Equatable {
    /// Per-sample input shape; nil until resolved against the dataset.
    public var inputShape: [Int]?
    public var layers: [LayerSpec]

    public init(inputShape: [Int]?, layers: [LayerSpec]) {
        self.inputShape = inputShape
        self.layers = layers
    }
}

/// A 2-D size: kernel, stride or padding (height, width).
public struct Size2D: Sendable, Equatable {
    public var height: Int
    public var width: Int
    public init(_ height: Int, _ width: Int) {
        self.height = height
        self.width = width
    }
    public static func square(_ side: Int) -> Size2D { Size2D(side, side) }
    var jsonValue: JSONValue { height == width ? JSONValue(height) : JSONValue([height, width]) }
}

/// `padding`: "same" keeps the spatial size at stride 1 (pads (k−1)/2 per side; odd kernels),
/// "valid" pads nothing, or explicit zero padding per side.
public enum Padding: Sendable, Equatable {
    case same, valid
    case explicit(Size2D)

    /// The zero padding on each side for `kernel`.
    public func amount(kernel: Size2D) -> Size2D {
        switch self {
        case .same: Size2D((kernel.height - 1) / 2, (kernel.width - 1) / 2)
        case .valid: Size2D(0, 0)
        case .explicit(let size): size
        }
    }
    var jsonValue: JSONValue {
        switch self {
        case .same: "same"
        case .valid: "valid"
        case .explicit(let size): size.jsonValue
        }
    }
}

public enum LayerSpec: Sendable, Equatable {
    case dense(units: Int, activation: ActivationFunction, bias: Bool)
    case dropout(rate: Double)
    case activation(ActivationFunction)
    case conv2d(filters: Int, kernel: Size2D, stride: Size2D, padding: Padding, groups: Int, bias: Bool, activation: ActivationFunction)
    case depthwiseConv2d(kernel: Size2D, stride: Size2D, padding: Padding, depthMultiplier: Int, bias: Bool, activation: ActivationFunction)
    /// MobileNet v1's block: depthwise k×k → BN → ReLU → pointwise 1×1 → BN → ReLU.
    case separableConv2d(filters: Int, kernel: Size2D, stride: Size2D, padding: Padding)
    /// ShuffleNet v1's unit: grouped 1×1 → BN → ReLU → shuffle → depthwise 3×3 → BN → grouped 1×1 → BN,
    /// then + identity (stride 1) or ⧺ avg-pooled input (stride 2), then ReLU.
    case shuffleUnit(outChannels: Int, groups: Int, stride: Int)
    case channelShuffle(groups: Int)
    case maxPool2d(kernel: Size2D, stride: Size2D)
    case avgPool2d(kernel: Size2D, stride: Size2D)
    case globalAvgPool2d
    case batchNorm
    case layerNorm
    case flatten
    case reshape(shape: [Int])
    case embedding(numEmbeddings: Int, dim: Int)
    case lstm(hiddenSize: Int, returnSequences: Bool)
    case gru(hiddenSize: Int, returnSequences: Bool)
    /// y = x + f(x) for the inner layers f (their output shape must equal their input shape).
    case residual(layers: [LayerSpec])

    public var typeName: String {
        switch self {
        case .dense: "dense"
        case .dropout: "dropout"
        case .activation: "activation"
        case .conv2d: "conv2d"
        case .depthwiseConv2d: "depthwise_conv2d"
        case .separableConv2d: "separable_conv2d"
        case .shuffleUnit: "shuffle_unit"
        case .channelShuffle: "channel_shuffle"
        case .maxPool2d: "max_pool2d"
        case .avgPool2d: "avg_pool2d"
        case .globalAvgPool2d: "global_avg_pool2d"
        case .batchNorm: "batch_norm"
        case .layerNorm: "layer_norm"
        case .flatten: "flatten"
        case .reshape: "reshape"
        case .embedding: "embedding"
        case .lstm: "lstm"
        case .gru: "gru"
        case .residual: "residual"
        }
    }
}

extension ModelSpec {
    static let keysByType: [String: [String]] = [
        "dense": ["units", "activation", "bias"],
        "dropout": ["rate"],
        "activation": ["name"],
        "conv2d": ["filters", "kernel", "stride", "padding", "groups", "bias", "activation"],
        "depthwise_conv2d": ["kernel", "stride", "padding", "depth_multiplier", "bias", "activation"],
        "separable_conv2d": ["filters", "kernel", "stride", "padding"],
        "shuffle_unit": ["out_channels", "groups", "stride"],
        "channel_shuffle": ["groups"],
        "max_pool2d": ["kernel", "stride"],
        "avg_pool2d": ["kernel", "stride"],
        "global_avg_pool2d": [],
        "batch_norm": [],
        "layer_norm": [],
        "flatten": [],
        "reshape": ["shape"],
        "embedding": ["num_embeddings", "dim"],
        "lstm": ["hidden_size", "return_sequences"],
        "gru": ["hidden_size", "return_sequences"],
        "residual": ["layers"],
    ]
    static let layerTypeNames = ["dense", "dropout", "activation", "conv2d", "depthwise_conv2d", "separable_conv2d",
                                 "shuffle_unit", "channel_shuffle", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm",
                                 "layer_norm", "flatten", "reshape", "embedding", "lstm", "gru", "residual"]

    /// Reads `model` from a spec, reporting every problem to `diagnostics`. Returns nil if unusable.
    /// Presets are expanded by `ModelPreset` before this point.
    public static func parse(_ value: JSONValue, path: String, diagnostics: SpecDiagnostics) -> ModelSpec? {
        guard let model = ObjectReader(value, path: path, diagnostics: diagnostics,
                                       allowedKeys: ["input_shape", "layers", "preset", "width_multiplier", "groups", "classes"])
        else { return nil }
        var inputShape: [Int]? = nil
        if let shape = model.intArray("input_shape", range: 0...Int.max, maxCount: 16) {
            if shape.isEmpty || shape.count > 4 || shape.contains(where: { $0 < 1 }) {
                model.report("input_shape", "must be a list of 1 to 4 positive sizes, got \(shape)")
            } else if !ModelSpec.isSampleSized(shape) {
                model.report("input_shape", "must hold at most \(ModelSpec.maxSampleValues) values per sample, got \(shape)")
            } else {
                inputShape = shape
            }
        }
        if model.has("preset") {
            for key in ["layers"] where model.has(key) { model.report(key, "give either a preset or layers, not both") }
            guard let layers = ModelPreset.read(model) else { return nil }
            return ModelSpec(inputShape: inputShape, layers: layers)
        }
        for key in ["width_multiplier", "groups", "classes"] where model.has(key) {
            model.report(key, "only applies to a model preset")
        }
        guard let items = model.array("layers") else {
            if !model.has("layers") { model.report("layers", "is required: a list of layers (or a preset)") }
            return nil
        }
        guard let layers = parseLayers(items, path: model.childPath("layers"), diagnostics: diagnostics) else { return nil }
        return ModelSpec(inputShape: inputShape, layers: layers)
    }

    static func parseLayers(_ items: [JSONValue], path: String, diagnostics: SpecDiagnostics) -> [LayerSpec]? {
        if items.isEmpty { diagnostics.report(path, "must contain at least one layer") }
        var layers: [LayerSpec] = []
        for (index, item) in items.enumerated() {
            if let layer = parseLayer(item, path: "\(path)[\(index)]", diagnostics: diagnostics) { layers.append(layer) }
        }
        return layers.count == items.count && !items.isEmpty ? layers : nil
    }

    static func parseLayer(_ value: JSONValue, path: String, diagnostics: SpecDiagnostics) -> LayerSpec? {
        guard case .object(let fields) = value else {
            diagnostics.report(path, "must be an object, got \(value.kindName)")
            return nil
        }
        guard case .string(let type)? = fields["type"] else {
            diagnostics.report("\(path).type", "is required: one of \(layerTypeNames.joined(separator: ", "))")
            return nil
        }
        guard let keys = keysByType[type] else {
            diagnostics.report("\(path).type", "must be one of \(layerTypeNames.joined(separator: ", ")), got \"\(type)\"")
            return nil
        }
        guard let layer = ObjectReader(value, path: path, diagnostics: diagnostics, allowedKeys: ["type"] + keys) else { return nil }
        func required(_ key: String, _ what: String) -> Int {
            if !layer.has(key) { layer.report(key, "is required: \(what)") }
            return layer.int(key, default: 1, range: 1...1_000_000)
        }
        func size(_ key: String, default defaultValue: Int) -> Size2D {
            guard let value = layer.fields[key], value != .null else { return .square(defaultValue) }
            if case .array = value, let pair = layer.intArray(key, range: 1...1024, maxCount: 16) {
                guard pair.count == 2, pair.allSatisfy({ $0 >= 1 }) else {
                    layer.report(key, "must be a positive integer or [height, width], got \(pair)")
                    return .square(defaultValue)
                }
                return Size2D(pair[0], pair[1])
            }
            return .square(layer.int(key, default: defaultValue, range: 1...1024))
        }
        func padding(default defaultValue: Padding) -> Padding {
            guard let value = layer.fields["padding"], value != .null else { return defaultValue }
            switch value {
            case .string("same"): return .same
            case .string("valid"): return .valid
            case .number:
                return .explicit(.square(layer.int("padding", default: 0, range: 0...1024)))
            case .array:
                if let pair = layer.intArray("padding", range: 0...1024, maxCount: 16), pair.count == 2, pair.allSatisfy({ $0 >= 0 }) {
                    return .explicit(Size2D(pair[0], pair[1]))
                }
            default: break
            }
            layer.report("padding", "must be \"same\", \"valid\", a size ≥ 0 or [height, width], got \(value.briefDescription)")
            return defaultValue
        }
        let activation: ActivationFunction = layer.choice("activation", default: .linear)
        switch type {
        case "dense":
            return .dense(units: required("units", "the number of outputs"), activation: activation, bias: layer.bool("bias", default: true))
        case "dropout":
            return .dropout(rate: layer.double("rate", default: 0.5, check: Check.fraction))
        case "activation":
            if !layer.has("name") { layer.report("name", "is required: one of \(ActivationFunction.allCases.map(\.rawValue).joined(separator: ", "))") }
            return .activation(layer.choice("name", default: .linear))
        case "conv2d":
            return .conv2d(filters: required("filters", "the number of output channels"), kernel: size("kernel", default: 3),
                           stride: size("stride", default: 1), padding: padding(default: .valid),
                           groups: layer.int("groups", default: 1, range: 1...100_000), bias: layer.bool("bias", default: true),
                           activation: activation)
        case "depthwise_conv2d":
            return .depthwiseConv2d(kernel: size("kernel", default: 3), stride: size("stride", default: 1), padding: padding(default: .valid),
                                    depthMultiplier: layer.int("depth_multiplier", default: 1, range: 1...64),
                                    bias: layer.bool("bias", default: true), activation: activation)
        case "separable_conv2d":
            return .separableConv2d(filters: required("filters", "the pointwise convolution's output channels"),
                                    kernel: size("kernel", default: 3), stride: size("stride", default: 1), padding: padding(default: .same))
        case "shuffle_unit":
            return .shuffleUnit(outChannels: required("out_channels", "the unit's output channels"),
                                groups: layer.int("groups", default: 3, range: 1...64), stride: layer.int("stride", default: 1, range: 1...2))
        case "channel_shuffle":
            return .channelShuffle(groups: required("groups", "the number of channel groups"))
        case "max_pool2d", "avg_pool2d":
            let kernel = size("kernel", default: 2)
            let stride = layer.has("stride") ? size("stride", default: 2) : kernel
            return type == "max_pool2d" ? .maxPool2d(kernel: kernel, stride: stride) : .avgPool2d(kernel: kernel, stride: stride)
        case "global_avg_pool2d": return .globalAvgPool2d
        case "batch_norm": return .batchNorm
        case "layer_norm": return .layerNorm
        case "flatten": return .flatten
        case "reshape":
            if !layer.has("shape") { layer.report("shape", "is required: the per-sample shape, e.g. [1, 8, 8]") }
            let shape = layer.intArray("shape", range: 0...Int.max, maxCount: 16) ?? [1]
            if shape.isEmpty || shape.contains(where: { $0 < 1 }) { layer.report("shape", "must be a list of positive sizes, got \(shape)") }
            else if !ModelSpec.isSampleSized(shape) { layer.report("shape", "must hold at most \(ModelSpec.maxSampleValues) values per sample, got \(shape)") }
            return .reshape(shape: shape)
        case "embedding":
            return .embedding(numEmbeddings: required("num_embeddings", "the vocabulary size"), dim: required("dim", "the embedding size"))
        case "lstm", "gru":
            let hidden = required("hidden_size", "the state size")
            let sequences = layer.bool("return_sequences", default: false)
            return type == "lstm" ? .lstm(hiddenSize: hidden, returnSequences: sequences) : .gru(hiddenSize: hidden, returnSequences: sequences)
        default:  // residual
            guard let items = layer.array("layers") else {
                layer.report("layers", "is required: the layers of the residual branch")
                return nil
            }
            guard let inner = parseLayers(items, path: layer.childPath("layers"), diagnostics: diagnostics) else { return nil }
            return .residual(layers: inner)
        }
    }

    /// The spec as JSON with every default filled in.
    public var jsonValue: JSONValue {
        .object([
            "input_shape": inputShape.map { JSONValue($0) } ?? .null,
            "layers": .array(layers.map(\.jsonValue)),
        ])
    }
}

extension LayerSpec {
    public var jsonValue: JSONValue {
        var fields: [String: JSONValue]
        switch self {
        case .dense(let units, let activation, let bias):
            fields = ["units": JSONValue(units), "activation": JSONValue(activation.rawValue), "bias": .bool(bias)]
        case .dropout(let rate): fields = ["rate": JSONValue(rate)]
        case .activation(let function): fields = ["name": JSONValue(function.rawValue)]
        case .conv2d(let filters, let kernel, let stride, let padding, let groups, let bias, let activation):
            fields = ["filters": JSONValue(filters), "kernel": kernel.jsonValue, "stride": stride.jsonValue, "padding": padding.jsonValue,
                      "groups": JSONValue(groups), "bias": .bool(bias), "activation": JSONValue(activation.rawValue)]
        case .depthwiseConv2d(let kernel, let stride, let padding, let multiplier, let bias, let activation):
            fields = ["kernel": kernel.jsonValue, "stride": stride.jsonValue, "padding": padding.jsonValue,
                      "depth_multiplier": JSONValue(multiplier), "bias": .bool(bias), "activation": JSONValue(activation.rawValue)]
        case .separableConv2d(let filters, let kernel, let stride, let padding):
            fields = ["filters": JSONValue(filters), "kernel": kernel.jsonValue, "stride": stride.jsonValue, "padding": padding.jsonValue]
        case .shuffleUnit(let outChannels, let groups, let stride):
            fields = ["out_channels": JSONValue(outChannels), "groups": JSONValue(groups), "stride": JSONValue(stride)]
        case .channelShuffle(let groups): fields = ["groups": JSONValue(groups)]
        case .maxPool2d(let kernel, let stride), .avgPool2d(let kernel, let stride):
            fields = ["kernel": kernel.jsonValue, "stride": stride.jsonValue]
        case .globalAvgPool2d, .batchNorm, .layerNorm, .flatten: fields = [:]
        case .reshape(let shape): fields = ["shape": JSONValue(shape)]
        case .embedding(let count, let dim): fields = ["num_embeddings": JSONValue(count), "dim": JSONValue(dim)]
        case .lstm(let hidden, let sequences), .gru(let hidden, let sequences):
            fields = ["hidden_size": JSONValue(hidden), "return_sequences": .bool(sequences)]
        case .residual(let layers): fields = ["layers": .array(layers.map(\.jsonValue))]
        }
        fields["type"] = JSONValue(typeName)
        return .object(fields)
    }
}

extension ModelSpec {
    /// The most values one sample may hold (2³¹): far above any real input, and low enough that
    /// the shape arithmetic of the layers (sizes, parameters, FLOPs) cannot overflow.
    public static let maxSampleValues = 1 << 31

    /// Whether the sizes multiply to at most `maxSampleValues` (checked without overflowing).
    static func isSampleSized(_ shape: [Int]) -> Bool {
        var product = 1
        for size in shape {
            let (next, overflow) = product.multipliedReportingOverflow(by: size)
            if overflow || next > maxSampleValues { return false }
            product = next
        }
        return true
    }
}
