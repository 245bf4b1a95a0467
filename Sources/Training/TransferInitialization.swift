import NeuralNetwork
import Tensors

/// The spec's `init`: start from a finished job's weights, optionally keeping some layers fixed.
public struct InitSpec: Sendable, Equatable {
    public var fromJob: String
    /// Indices into `model.layers` whose parameters stay as loaded.
    public var freeze: [Int]

    public init(fromJob: String, freeze: [Int]) {
        self.fromJob = fromJob
        self.freeze = freeze
    }

    public var jsonValue: JSONValue { ["from_job": JSONValue(fromJob), "freeze": JSONValue(freeze)] }

    static func read(_ root: ObjectReader) -> InitSpec? {
        guard let object = root.object("init", allowedKeys: ["from_job", "freeze"]) else { return nil }
        guard let job = object.optionalString("from_job") else {
            if !object.has("from_job") { object.report("from_job", "is required: the id of a succeeded job whose weights to start from") }
            return nil
        }
        let freeze = object.intArray("freeze", range: 0...10_000) ?? []
        if let negative = freeze.first(where: { $0 < 0 }) { object.report("freeze", "must list layer indices ≥ 0, got \(negative)") }
        return InitSpec(fromJob: job, freeze: Array(Set(freeze)).sorted())
    }
}

/// How a new network takes over a trained one's weights, layer by layer.
///
/// Layers must agree in their parameter shapes, except the last one: a differently sized output
/// layer (new classes) is left freshly initialized.
public struct WeightTransfer {
    public let source: Network
    public let freeze: Set<Int>

    public init(source: Network, freeze: [Int]) {
        self.source = source
        self.freeze = Set(freeze)
    }

    /// The first layer whose parameters do not line up, as a 422 issue; nil when they all do.
    public static func mismatch(source: ModelSpec, target: ModelSpec) -> SpecIssue? {
        guard let sourceShape = source.inputShape, let targetShape = target.inputShape else { return nil }
        let diagnostics = SpecDiagnostics()
        guard let from = source.summarize(inputShape: sourceShape, diagnostics: diagnostics),
              let to = target.summarize(inputShape: targetShape, diagnostics: diagnostics)
        else { return SpecIssue(path: "init.from_job", message: "the source job's architecture cannot be read") }
        guard source.layers.count == target.layers.count else {
            return SpecIssue(path: "model.layers", message: "has \(target.layers.count) layers; the source job's model has \(source.layers.count), and they must agree layer by layer")
        }
        for index in target.layers.indices where index < target.layers.count - 1 {
            if source.layers[index].typeName != target.layers[index].typeName || from[index].parameters != to[index].parameters
                || from[index].outputShape != to[index].outputShape {
                return SpecIssue(path: "model.layers[\(index)]",
                                 message: "is \(target.layers[index].typeName) with output \(to[index].outputShape) and \(to[index].parameters) parameters; the source job's layer \(index) is \(source.layers[index].typeName) with output \(from[index].outputShape) and \(from[index].parameters) parameters")
            }
        }
        return nil
    }

    /// Copies every layer's parameters and buffers whose shapes match; returns the indices of
    /// layers left as initialized (a resized output layer).
    @discardableResult
    public func apply(to network: Network) -> [Int] {
        var fresh: [Int] = []
        for (index, (target, origin)) in zip(network.layers, source.layers).enumerated() {
            let targetParameters = target.namedParameters, originParameters = origin.namedParameters
            let shapesAgree = targetParameters.count == originParameters.count
                && zip(targetParameters, originParameters).allSatisfy { $0.parameter.shape == $1.parameter.shape }
            guard shapesAgree else { fresh.append(index); continue }
            for (mine, theirs) in zip(targetParameters, originParameters) { mine.parameter.value.copy(from: theirs.parameter.value) }
            for (mine, theirs) in zip(target.buffers, origin.buffers) where mine.tensor.count == theirs.tensor.count {
                mine.tensor.copy(from: theirs.tensor)
            }
        }
        return fresh
    }

    /// The parameters an optimizer should update: all but the frozen layers'.
    public func trainableParameters(of network: Network) -> [Parameter] {
        network.layers.enumerated().filter { !freeze.contains($0.offset) }.flatMap { $0.element.parameters }
    }
}
