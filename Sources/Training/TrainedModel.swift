import Compression
import Datasets
import Foundation
import NeuralNetwork
import Tensors

/// A trained network with what it needs to answer raw inputs: the standardization fitted on the
/// training rows, the class labels and the loss (which decides how outputs are read).
///
/// Saved as `.safetensors` (API.md § Models): tensors `layers.<i>.<param>` in torch layout, and
/// string metadata `format`, `version`, `architecture`, `preprocessing`, `classes`, `input_shape`,
/// `task`, `loss`.
public final class TrainedModel: @unchecked Sendable {
    public let network: Network
    public let standardization: Standardization?
    public let classes: [String]?
    public let task: LearningTask
    public let loss: LossSpec
    /// Set once the weights sit on an integer grid: the file then stores them packed, and inference
    /// fake-quantizes the activations entering each dense/conv2d layer.
    public var quantization: ModelQuantization?
    /// Serializes `predict`: the network's buffers are reused between calls.
    private let lock = NSLock()

    public init(network: Network, standardization: Standardization?, classes: [String]?, task: LearningTask, loss: LossSpec) {
        self.network = network
        self.standardization = standardization
        self.classes = classes
        self.task = task
        self.loss = loss
    }

    public var inputCount: Int { network.inputShape.reduce(1, *) }

    /// The same model around another network (a channel-pruned copy).
    public func replacingNetwork(_ network: Network) -> TrainedModel {
        let copy = TrainedModel(network: network, standardization: standardization, classes: classes, task: task, loss: loss)
        copy.quantization = quantization
        return copy
    }

    // MARK: Saving and loading

    public func safetensors() -> Data {
        let quantized = Set(quantization.map { _ in WeightQuantization.quantizableParameters(of: network).map(\.name) } ?? [])
        var tensors: [SafeTensorsFile.Entry] = []
        for (name, parameter) in network.namedParameters {
            if quantized.contains(name), let quantization {
                let codes = quantization.codes[name].flatMap { $0.shape == parameter.shape ? $0 : nil } ?? quantization.weights.encode(parameter)
                tensors += Self.entries(name: name, codes)
            } else {
                tensors.append(SafeTensorsFile.Entry(name: name, shape: parameter.shape, values: parameter.value.array))
            }
        }
        tensors += network.namedBuffers.map { SafeTensorsFile.Entry(name: $0.name, shape: $0.tensor.shape, values: $0.tensor.array) }
        let preprocessing: JSONValue = standardization.map {
            ["mean": .array($0.mean.map { JSONValue($0) }), "std": .array($0.std.map { JSONValue($0) })]
        } ?? .null
        var metadata: [String: String] = [
            "format": "descent",
            "version": "1",
            "architecture": network.spec.jsonValue.encodedString(),
            "preprocessing": preprocessing.encodedString(),
            "classes": (classes.map { JSONValue($0) } ?? .null).encodedString(),
            "input_shape": JSONValue(network.inputShape).encodedString(),
            "task": task.rawValue,
            "loss": loss.jsonValue.encodedString(),
        ]
        if let quantization { metadata["quantization"] = quantization.jsonValue(shapes: network).encodedString() }
        return SafeTensorsFile(tensors: tensors, metadata: metadata).serialized()
    }

    public enum LoadError: Error, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let message): "cannot load model: \(message)" }
        }
    }

    /// Rebuilds a model from the bytes `safetensors()` wrote.
    public static func load(_ data: Data) throws -> TrainedModel {
        let file = try SafeTensorsFile.parse(data)
        let metadata = file.metadata
        guard metadata["format"] == "descent", metadata["version"] == "1" else {
            throw LoadError.invalid("metadata format/version is not descent/1")
        }
        guard metadata["task"] != "gan" else {
            throw LoadError.invalid("this is a GAN: it takes no inputs to predict from; load it with GANModel.load and draw samples")
        }
        func json(_ key: String) throws -> JSONValue {
            guard let text = metadata[key] else { throw LoadError.invalid("metadata has no \(key)") }
            return try JSONValue.parse(Data(text.utf8))
        }
        let diagnostics = SpecDiagnostics()
        guard let spec = ModelSpec.parse(try json("architecture"), path: "architecture", diagnostics: diagnostics),
              spec.inputShape != nil
        else { throw LoadError.invalid(diagnostics.issues.map(\.description).joined(separator: "; ")) }
        let network = Network(spec: spec, seed: 0)
        var quantization = try metadata["quantization"].map { try ModelQuantization.parse(JSONValue.parse(Data($0.utf8))) }
        for (name, parameter) in network.namedParameters {
            if let grid = quantization, let packed = file.tensor(named: "\(name).codes")?.bytes {
                let codes = try Self.codes(name: name, packed: packed, shape: parameter.shape, quantization: grid, file: file)
                _ = parameter.value.values.update(fromContentsOf: codes.dequantized())
                quantization?.codes[name] = codes
                continue
            }
            guard let entry = file.tensor(named: name), entry.shape == parameter.shape, entry.bytes == nil else {
                throw LoadError.invalid("tensor \(name) is missing or has the wrong shape")
            }
            _ = parameter.value.values.update(fromContentsOf: entry.values)
        }
        for buffer in network.namedBuffers {
            guard let entry = file.tensor(named: buffer.name), entry.values.count == buffer.tensor.count else {
                throw LoadError.invalid("tensor \(buffer.name) is missing or has the wrong shape")
            }
            _ = buffer.tensor.values.update(fromContentsOf: entry.values)
        }
        var standardization: Standardization?
        if case .object(let fields) = try json("preprocessing"),
           case .array(let mean)? = fields["mean"], case .array(let std)? = fields["std"] {
            standardization = Standardization(mean: mean.map(Self.float), std: std.map(Self.float))
        }
        var classes: [String]?
        if case .array(let labels) = try json("classes") {
            classes = labels.map { if case .string(let label) = $0 { label } else { $0.encodedString() } }
        }
        let task = LearningTask(rawValue: metadata["task"] ?? "") ?? (classes == nil ? .regression : .classification)
        let lossDiagnostics = SpecDiagnostics()
        let lossSpec = JobSpec.parseLoss(try json("loss"), diagnostics: lossDiagnostics) ?? .crossEntropy(labelSmoothing: 0, classWeights: nil)
        let model = TrainedModel(network: network, standardization: standardization, classes: classes, task: task, loss: lossSpec)
        if let quantization {
            network.installActivationQuantizers(grids: quantization.activationGrids)
            model.quantization = quantization
        }
        return model
    }

    // MARK: Quantized weights in the file

    /// `<name>.codes` (U8, packed integer codes or sign bits), `<name>.scale` (F32 per channel or one),
    /// `<name>.zero_point` (F32, integers; not for binary weights).
    private static func entries(name: String, _ tensor: QuantizedTensor) -> [SafeTensorsFile.Entry] {
        var entries = [SafeTensorsFile.Entry(name: "\(name).codes", shape: [tensor.packed.count], bytes: tensor.packed),
                       SafeTensorsFile.Entry(name: "\(name).scale", shape: [tensor.scales.count], values: tensor.scales)]
        if tensor.binaryScales == nil {
            entries.append(SafeTensorsFile.Entry(name: "\(name).zero_point", shape: [tensor.zeroPoints.count], values: tensor.zeroPoints.map(Float.init)))
        }
        return entries
    }

    private static func codes(name: String, packed: [UInt8], shape: [Int], quantization: ModelQuantization,
                              file: SafeTensorsFile) throws -> QuantizedTensor {
        let bits = quantization.weights.bits
        let count = shape.reduce(1, *)
        guard packed.count == (count * bits + 7) / 8, let scales = file.tensor(named: "\(name).scale")?.values, !scales.isEmpty else {
            throw LoadError.invalid("quantized tensor \(name) has the wrong size or no scale")
        }
        if bits == 1 {
            guard scales.count == shape[0] else { throw LoadError.invalid("binary tensor \(name) needs one scale per output channel") }
            return QuantizedTensor(shape: shape, bits: 1, parameters: nil, binaryScales: scales, packed: packed)
        }
        guard let zeroPoints = file.tensor(named: "\(name).zero_point")?.values, zeroPoints.count == scales.count,
              scales.count == 1 || scales.count == shape[0]
        else { throw LoadError.invalid("quantized tensor \(name) has no matching zero_point") }
        let range = QuantizationParameters.range(bits: bits, scheme: quantization.weights.scheme)
        let grid = QuantizationParameters(bits: bits, scheme: quantization.weights.scheme, quantMin: range.min, quantMax: range.max,
                                          scales: scales, zeroPoints: zeroPoints.map { Int32($0) })
        return QuantizedTensor(shape: shape, bits: bits, parameters: grid, binaryScales: nil, packed: packed)
    }

    private static func float(_ value: JSONValue) -> Float {
        if case .number(let number) = value { return Float(number) }
        return 0
    }

    // MARK: Predicting

    public struct Prediction: Sendable {
        /// Class probabilities (classification) or predicted values (regression), one row per input.
        public var outputs: [[Float]]
        /// Class labels (classification) or the predicted values (regression).
        public var predictions: [JSONValue]
    }

    public struct InputError: Error, CustomStringConvertible {
        public let path: String
        public let message: String
        public var description: String { "\(path): \(message)" }
    }

    /// Applies the stored standardization, runs the network in inference mode and reads outputs
    /// as probabilities (softmax for cross-entropy, sigmoid for BCE) or values.
    public func predict(_ inputs: [[Double]]) throws(InputError) -> Prediction {
        guard !inputs.isEmpty else { throw InputError(path: "inputs", message: "must contain at least one row") }
        for (index, row) in inputs.enumerated() {
            guard row.count == inputCount else {
                throw InputError(path: "inputs[\(index)]", message: "has \(row.count) values; the model takes \(inputCount)")
            }
            // The kernels run in float32: a double beyond its range would arrive as infinity.
            if let bad = row.firstIndex(where: { !Float($0).isFinite }) {
                throw InputError(path: "inputs[\(index)][\(bad)]", message: "must be a finite number within float32's range (±3.4e38), got \(row[bad])")
            }
        }
        var features = inputs.flatMap { $0.map(Float.init) }
        standardization?.apply(to: &features, featureCount: inputCount)
        if let problem = network.invalidInput(features) {
            throw InputError(path: "inputs[\(problem.offset / inputCount)][\(problem.offset % inputCount)]", message: problem.message)
        }
        let input = Tensor(shape: [inputs.count] + network.inputShape, values: features)
        let width = network.outputShape.reduce(1, *)
        lock.lock()
        defer { lock.unlock() }
        let output = network.forward(input, isTraining: false)
        var rows: [[Float]] = []
        var predictions: [JSONValue] = []
        switch loss {
        case .crossEntropy:
            let probabilities = Tensor(shape: output.shape)
            softmaxRows(output, into: probabilities)
            for i in 0..<inputs.count {
                let row = Array(probabilities.values[(i * width)..<((i + 1) * width)])
                rows.append(row)
                let best = row.indices.max { row[$0] < row[$1] } ?? 0
                predictions.append(JSONValue(classes?[best] ?? String(best)))
            }
        case .bceWithLogits:
            for i in 0..<inputs.count {
                let row = (0..<width).map { 1 / (1 + expf(-output[i * width + $0])) }
                rows.append(row)
                if task == .classification, let classes, classes.count == 2, width == 1 {
                    predictions.append(JSONValue(classes[row[0] >= 0.5 ? 1 : 0]))
                } else {
                    predictions.append(width == 1 ? JSONValue(row[0]) : .array(row.map { JSONValue($0) }))
                }
            }
        case .mse, .huber:
            for i in 0..<inputs.count {
                let row = Array(output.values[(i * width)..<((i + 1) * width)])
                rows.append(row)
                predictions.append(width == 1 ? JSONValue(row[0]) : .array(row.map { JSONValue($0) }))
            }
        }
        return Prediction(outputs: rows, predictions: predictions)
    }
}
