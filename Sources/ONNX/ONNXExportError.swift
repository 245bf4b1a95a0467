/// Why a model cannot be written as ONNX, naming the layer at fault: the exporter refuses rather than
/// write a file that would not compute what `/predict` computes.
public struct ONNXExportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The layer's path in the spec, as a 422 names it (`model.layers[3]`, `model.layers[2].layers[0]`),
    /// or `model` for the whole file.
    public let path: String
    /// The layer's type (`dense`, `lstm`…), nil for the whole file.
    public let layerType: String?
    public let reason: String

    public init(path: String, layerType: String?, reason: String) {
        self.path = path
        self.layerType = layerType
        self.reason = reason
    }

    public var description: String {
        if let layerType { return "layer \(path) (\(layerType)) cannot be expressed in ONNX: \(reason)" }
        return "\(path) cannot be expressed in ONNX: \(reason)"
    }
}
