import Compression
import Datasets
import Foundation
import NeuralNetwork
import SwiftProtobuf
import Training

/// A trained model as an ONNX file that onnxruntime (or any runtime of opset 17) runs with the outputs of
/// `/predict` (API.md § Models, `?format=onnx`).
///
/// The graph takes `input`, float32 `[N, …input_shape]` in the data's own units: the stored standardization
/// (x − mean) / std is its first two nodes. It gives, in this order:
/// - cross-entropy classification: `probabilities` (softmax over each sample's outputs) and `logits`;
/// - `bce_with_logits` classification: `probabilities` (sigmoid of each output) and `logits`;
/// - regression (and `bce_with_logits` on 0/1 targets): `outputs`, what `/predict` calls outputs.
/// Every output is `[N, outputs]` (a sample's outputs flattened, as `/predict` lists them).
/// A GAN job exports its generator: `input` the latent vector `[N, latent_dim]`, `outputs` the samples
/// `[N, …sample_shape]` in the data's units, as `/samples` gives them.
///
/// The file also carries `metadata_props`: `classes` (JSON list of labels in output order, or null),
/// `task`, `loss`, `input_shape` and the saved `architecture`.
public enum ONNXExport {
    /// The operator set the graph uses (LayerNormalization needs 17) and the IR version that goes with it:
    /// not the newest, so that runtimes a few years old read the file too (the tests use onnxruntime 1.32).
    public static let opsetVersion: Int64 = 17
    public static let irVersion: Int64 = 8
    /// Protobuf cannot write a message over 2 GiB; bigger models would need ONNX's external data files.
    static let maxFileBytes = Int(Int32.max) - (1 << 20)

    /// The supervised model `model` as ONNX bytes; `name` names the graph (the job's name).
    public static func export(_ model: TrainedModel, name: String? = nil) throws(ONNXExportError) -> Data {
        let network = model.network
        var builder = NetworkGraph(network: network, quantization: model.quantization)
        var x = "input"
        if let standardization = model.standardization {
            guard standardization.mean.count == model.inputCount else {
                throw ONNXExportError(path: "preprocessing", layerType: nil,
                                      reason: "\(standardization.mean.count) standardized features for an input of \(model.inputCount) values")
            }
            // Exactly `Standardization.apply`: (x − mean) / std per feature, in float32.
            let mean = builder.graph.floats(standardization.mean, shape: network.inputShape, name: "preprocessing.mean")
            let std = builder.graph.floats(standardization.std, shape: network.inputShape, name: "preprocessing.std")
            x = builder.graph.op("Sub", [x, mean], name: "preprocessing/centered")
            x = builder.graph.op("Div", [x, std], name: "preprocessing/standardized")
        }
        let (output, shape) = try builder.network(network.spec, input: x, shape: network.inputShape)
        let width = shape.reduce(1, *)
        let flat = shape.count > 1 ? builder.graph.op("Flatten", [output], [.int("axis", 1)], name: "flat_outputs") : output
        var outputs: [Onnx_ValueInfoProto] = []
        switch model.loss {
        case .crossEntropy:
            builder.graph.op("Softmax", [flat], [.int("axis", 1)], output: "probabilities")
            builder.graph.op("Identity", [flat], output: "logits")
            outputs = [.batchOfFloats("probabilities", shape: [width]), .batchOfFloats("logits", shape: [width])]
        case .bceWithLogits where model.task == .classification:
            builder.graph.op("Sigmoid", [flat], output: "probabilities")
            builder.graph.op("Identity", [flat], output: "logits")
            outputs = [.batchOfFloats("probabilities", shape: [width]), .batchOfFloats("logits", shape: [width])]
        case .bceWithLogits:
            builder.graph.op("Sigmoid", [flat], output: "outputs")
            outputs = [.batchOfFloats("outputs", shape: [width])]
        case .mse, .huber:
            builder.graph.op("Identity", [flat], output: "outputs")
            outputs = [.batchOfFloats("outputs", shape: [width])]
        }
        let metadata: [String: String] = [
            "format": "descent",
            "classes": (model.classes.map { JSONValue($0) } ?? .null).encodedString(),
            "task": model.task.rawValue,
            "loss": model.loss.jsonValue.encodedString(),
            "input_shape": JSONValue(network.inputShape).encodedString(),
            "architecture": network.spec.jsonValue.encodedString(),
        ]
        return try file(builder.graph, name: name, input: .batchOfFloats("input", shape: network.inputShape), outputs: outputs,
                        metadata: metadata, doc: "Trained by descent. Input: float32 [N, \(network.inputShape.map(String.init).joined(separator: ", "))] "
                            + "in the data's units (standardization is part of the graph).")
    }

    /// A GAN's generator as ONNX bytes: latent vectors in, samples in the data's units out.
    public static func export(generatorOf gan: GANModel, name: String? = nil) throws(ONNXExportError) -> Data {
        let generator = gan.generator
        var builder = NetworkGraph(network: generator, quantization: nil, tensorPrefix: "generator.")
        var (y, shape) = try builder.network(generator.spec, input: "input", shape: generator.inputShape)
        if let standardization = gan.standardization {
            guard standardization.mean.count == shape.reduce(1, *) else {
                throw ONNXExportError(path: "preprocessing", layerType: nil,
                                      reason: "\(standardization.mean.count) standardized features for samples of \(shape.reduce(1, *)) values")
            }
            // GANModel.sample: value · std + mean, in the data's units.
            let std = builder.graph.floats(standardization.std, shape: shape, name: "preprocessing.std")
            let mean = builder.graph.floats(standardization.mean, shape: shape, name: "preprocessing.mean")
            y = builder.graph.op("Mul", [y, std], name: "preprocessing/scaled")
            y = builder.graph.op("Add", [y, mean], name: "preprocessing/unstandardized")
        }
        builder.graph.op("Identity", [y], output: "outputs")
        let metadata: [String: String] = [
            "format": "descent",
            "task": "gan",
            "latent_dim": String(gan.latentDim),
            "sample_shape": JSONValue(shape).encodedString(),
            "architecture": generator.spec.jsonValue.encodedString(),
        ]
        return try file(builder.graph, name: name, input: .batchOfFloats("input", shape: generator.inputShape),
                        outputs: [.batchOfFloats("outputs", shape: shape)], metadata: metadata,
                        doc: "The generator of a GAN trained by descent. Input: latent vectors z ~ N(0, I), float32 [N, \(gan.latentDim)].")
    }

    private static func file(_ graph: GraphBuilder, name: String?, input: Onnx_ValueInfoProto, outputs: [Onnx_ValueInfoProto],
                             metadata: [String: String], doc: String) throws(ONNXExportError) -> Data {
        guard graph.initializerBytes < maxFileBytes else {
            throw ONNXExportError(path: "model", layerType: nil,
                                  reason: "its \(graph.initializerBytes) bytes of weights exceed the 2 GiB a single ONNX (protobuf) file can hold")
        }
        var proto = Onnx_GraphProto()
        proto.name = name ?? "descent"
        proto.node = graph.nodes
        proto.initializer = graph.initializers
        proto.input = [input]
        proto.output = outputs
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = opsetVersion
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.opsetImport = [opset]
        model.producerName = "descent"
        model.producerVersion = "1"
        model.docString = doc
        model.graph = proto
        model.metadataProps = metadata.sorted { $0.key < $1.key }.map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        do {
            return try model.serializedBytes()
        } catch {
            throw ONNXExportError(path: "model", layerType: nil, reason: "protobuf could not encode the graph: \(error)")
        }
    }
}
