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

public enum LayerSpec: Sendable, Equatable {
    case dense(units: Int, activation: ActivationFunction, bias: Bool)
    case dropout(rate: Double)
    case activation(ActivationFunction)

    public var typeName: String {
        switch self {
        case .dense: "dense"
        case .dropout: "dropout"
        case .activation: "activation"
        }
    }
}

extension ModelSpec {
    /// Layer types API.md names that later work adds; a spec using one gets a clear 422.
    static let plannedLayerTypes = [
        "conv2d", "depthwise_conv2d", "separable_conv2d", "shuffle_unit", "channel_shuffle", "max_pool2d", "avg_pool2d",
        "global_avg_pool2d", "batch_norm", "layer_norm", "flatten", "reshape", "embedding", "lstm", "gru", "residual",
    ]
    static let supportedLayerTypes = ["dense", "dropout", "activation"]

    /// Reads `model` from a spec, reporting every problem to `diagnostics`. Returns nil if unusable.
    public static func parse(_ value: JSONValue, path: String, diagnostics: SpecDiagnostics) -> ModelSpec? {
        guard let model = ObjectReader(value, path: path, diagnostics: diagnostics,
                                       allowedKeys: ["input_shape", "layers", "preset", "width_multiplier", "classes"])
        else { return nil }
        if model.has("preset") {
            model.report("preset", "model presets are not supported yet; list the layers in model.layers")
            return nil
        }
        for key in ["width_multiplier", "classes"] where model.has(key) {
            model.report(key, "only applies to a model preset, which is not supported yet")
        }
        var inputShape: [Int]? = nil
        if let shape = model.intArray("input_shape") {
            if shape.isEmpty || shape.contains(where: { $0 < 1 }) {
                model.report("input_shape", "must be a non-empty list of positive sizes, got \(shape)")
            } else {
                inputShape = shape
            }
        }
        guard let items = model.array("layers") else {
            if !model.has("layers") { model.report("layers", "is required: a list of layers") }
            return nil
        }
        if items.isEmpty { model.report("layers", "must contain at least one layer") }
        var layers: [LayerSpec] = []
        for (index, item) in items.enumerated() {
            if let layer = parseLayer(item, path: "\(model.childPath("layers"))[\(index)]", diagnostics: diagnostics) {
                layers.append(layer)
            }
        }
        guard layers.count == items.count else { return nil }
        return ModelSpec(inputShape: inputShape, layers: layers)
    }

    static func parseLayer(_ value: JSONValue, path: String, diagnostics: SpecDiagnostics) -> LayerSpec? {
        guard case .object(let fields) = value else {
            diagnostics.report(path, "must be an object, got \(value.kindName)")
            return nil
        }
        guard case .string(let type)? = fields["type"] else {
            diagnostics.report("\(path).type", "is required: one of \(supportedLayerTypes.joined(separator: ", "))")
            return nil
        }
        switch type {
        case "dense":
            guard let layer = ObjectReader(value, path: path, diagnostics: diagnostics, allowedKeys: ["type", "units", "activation", "bias"])
            else { return nil }
            if !layer.has("units") { layer.report("units", "is required: the number of outputs") }
            let units = layer.int("units", default: 1, range: 1...1_000_000)
            return .dense(units: units, activation: layer.choice("activation", default: .linear), bias: layer.bool("bias", default: true))
        case "dropout":
            guard let layer = ObjectReader(value, path: path, diagnostics: diagnostics, allowedKeys: ["type", "rate"]) else { return nil }
            return .dropout(rate: layer.double("rate", default: 0.5, check: Check.fraction))
        case "activation":
            guard let layer = ObjectReader(value, path: path, diagnostics: diagnostics, allowedKeys: ["type", "name"]) else { return nil }
            if !layer.has("name") { layer.report("name", "is required: one of \(ActivationFunction.allCases.map(\.rawValue).joined(separator: ", "))") }
            return .activation(layer.choice("name", default: .linear))
        case _ where plannedLayerTypes.contains(type):
            diagnostics.report("\(path).type", "layer type \"\(type)\" is not supported yet; supported: \(supportedLayerTypes.joined(separator: ", "))")
            return nil
        default:
            diagnostics.report("\(path).type", "must be one of \(supportedLayerTypes.joined(separator: ", ")), got \"\(type)\"")
            return nil
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
        switch self {
        case .dense(let units, let activation, let bias):
            ["type": "dense", "units": JSONValue(units), "activation": JSONValue(activation.rawValue), "bias": .bool(bias)]
        case .dropout(let rate):
            ["type": "dropout", "rate": JSONValue(rate)]
        case .activation(let function):
            ["type": "activation", "name": JSONValue(function.rawValue)]
        }
    }
}
