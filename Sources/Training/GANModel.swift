import Datasets
import Foundation
import NeuralNetwork
import Tensors

/// A trained GAN: the generator that `/samples` draws from, and the discriminator it was trained
/// against.
///
/// Saved as `.safetensors` like a supervised model, with the tensors of each network under its own
/// prefix — `generator.layers.<i>.<param>` and `discriminator.layers.<i>.<param>` (torch layout) —
/// and string metadata `format` = `descent`, `version` = `1`, `task` = `gan`, `latent_dim`,
/// `architecture` (JSON `{"generator": {…}, "discriminator": {…}}`), `generator_architecture` and
/// `discriminator_architecture` (each a model spec with its input shape), `input_shape` (the
/// generator's: `[latent_dim]`), `sample_shape`, `preprocessing` (the standardization to undo, or
/// null), `value_range` (the training data's `[min, max]`, which an image grid maps to black…white),
/// `classes` (null) and `loss` (`bce_with_logits`).
public final class GANModel: @unchecked Sendable {
    public let generator: Network
    public let discriminator: Network
    public let latentDim: Int
    /// Applied to the training data; samples are mapped back through it.
    public let standardization: Standardization?
    /// The smallest and largest feature value of the training data (before standardization).
    public let valueRange: (min: Float, max: Float)?
    /// Serializes sampling: the generator's buffers are reused between calls.
    private let lock = NSLock()

    public init(generator: Network, discriminator: Network, latentDim: Int, standardization: Standardization?,
                valueRange: (min: Float, max: Float)?) {
        self.generator = generator
        self.discriminator = discriminator
        self.latentDim = latentDim
        self.standardization = standardization
        self.valueRange = valueRange
    }

    /// The shape of one generated sample (the data's).
    public var sampleShape: [Int] { generator.outputShape }

    public var parameterCount: Int { generator.parameterCount + discriminator.parameterCount }

    /// The raw (un-standardized) range of the training features.
    static func valueRange(of data: PreparedData) -> (min: Float, max: Float)? {
        let train = data.train
        let width = train.featureCount
        guard train.rows > 0, width > 0 else { return nil }
        var low = Float.infinity, high = -Float.infinity
        train.features.withUnsafeBufferPointer { features in
            for row in 0..<train.rows {
                for j in 0..<width {
                    var value = features[row * width + j]
                    if let s = data.standardization { value = value * s.std[j] + s.mean[j] }
                    low = min(low, value)
                    high = max(high, value)
                }
            }
        }
        return low.isFinite && high.isFinite ? (low, high) : nil
    }

    // MARK: Sampling

    /// `count` samples G(z), z ~ N(0, I) drawn from `seed` (purpose `samples`), in inference mode
    /// and in the data's units: `count × sampleShape` values, row-major.
    public func sample(count: Int, seed: UInt64) -> [Float] {
        precondition(count >= 1, "count must be at least 1")
        var random = SeededGenerator(seed: seed, purpose: "samples")
        let z = Tensor(shape: [count, latentDim])
        for i in 0..<z.count { z[i] = random.normal() }
        lock.lock()
        var values = generator.forward(z, isTraining: false).array
        lock.unlock()
        if let standardization {
            let width = standardization.mean.count
            for i in values.indices { values[i] = values[i] * standardization.std[i % width] + standardization.mean[i % width] }
        }
        return values
    }

    // MARK: Saving and loading

    public var architecture: JSONValue {
        GANSpec(latentDim: latentDim, generator: generator.spec, discriminator: discriminator.spec).jsonValue
    }

    public func safetensors() -> Data {
        var tensors: [SafeTensorsFile.Entry] = []
        for (prefix, network) in [("generator", generator), ("discriminator", discriminator)] {
            tensors += network.namedParameters.map { name, parameter in
                SafeTensorsFile.Entry(name: "\(prefix).\(name)", shape: parameter.shape, values: parameter.value.array)
            }
            tensors += network.namedBuffers.map {
                SafeTensorsFile.Entry(name: "\(prefix).\($0.name)", shape: $0.tensor.shape, values: $0.tensor.array)
            }
        }
        let preprocessing: JSONValue = standardization.map {
            ["mean": .array($0.mean.map { JSONValue($0) }), "std": .array($0.std.map { JSONValue($0) })]
        } ?? .null
        let range: JSONValue = valueRange.map { [JSONValue($0.min), JSONValue($0.max)] } ?? .null
        let metadata: [String: String] = [
            "format": "descent",
            "version": "1",
            "task": "gan",
            "latent_dim": String(latentDim),
            "architecture": architecture.encodedString(),
            "generator_architecture": generator.spec.jsonValue.encodedString(),
            "discriminator_architecture": discriminator.spec.jsonValue.encodedString(),
            "input_shape": JSONValue(generator.inputShape).encodedString(),
            "sample_shape": JSONValue(sampleShape).encodedString(),
            "preprocessing": preprocessing.encodedString(),
            "value_range": range.encodedString(),
            "classes": JSONValue.null.encodedString(),
            "loss": LossSpec.bceWithLogits.jsonValue.encodedString(),
        ]
        return SafeTensorsFile(tensors: tensors, metadata: metadata).serialized()
    }

    /// Whether safetensors bytes hold a GAN (metadata `task` = `gan`), without loading the weights.
    public static func isGAN(_ data: Data) -> Bool {
        (try? SafeTensorsFile.parse(data))?.metadata["task"] == "gan"
    }

    /// Rebuilds a GAN from the bytes `safetensors()` wrote.
    public static func load(_ data: Data) throws -> GANModel {
        let file = try SafeTensorsFile.parse(data)
        let metadata = file.metadata
        guard metadata["format"] == "descent", metadata["version"] == "1" else {
            throw TrainedModel.LoadError.invalid("metadata format/version is not descent/1")
        }
        guard metadata["task"] == "gan" else { throw TrainedModel.LoadError.invalid("not a GAN model (metadata task is \(metadata["task"] ?? "missing"))") }
        func json(_ key: String) throws -> JSONValue {
            guard let text = metadata[key] else { throw TrainedModel.LoadError.invalid("metadata has no \(key)") }
            return try JSONValue.parse(Data(text.utf8))
        }
        guard let latentDim = metadata["latent_dim"].flatMap({ Int($0) }), latentDim >= 1 else {
            throw TrainedModel.LoadError.invalid("metadata latent_dim is missing or not a positive integer")
        }
        func network(_ prefix: String) throws -> Network {
            let diagnostics = SpecDiagnostics()
            guard let spec = ModelSpec.parse(try json("\(prefix)_architecture"), path: "\(prefix)_architecture", diagnostics: diagnostics),
                  spec.inputShape != nil, spec.summarize(inputShape: spec.inputShape!, diagnostics: diagnostics) != nil
            else { throw TrainedModel.LoadError.invalid(diagnostics.issues.map(\.description).joined(separator: "; ")) }
            let network = Network(spec: spec, seed: 0)
            for (name, parameter) in network.namedParameters {
                guard let entry = file.tensor(named: "\(prefix).\(name)"), entry.shape == parameter.shape else {
                    throw TrainedModel.LoadError.invalid("tensor \(prefix).\(name) is missing or has the wrong shape")
                }
                _ = parameter.value.values.update(fromContentsOf: entry.values)
            }
            for buffer in network.namedBuffers {
                guard let entry = file.tensor(named: "\(prefix).\(buffer.name)"), entry.values.count == buffer.tensor.count else {
                    throw TrainedModel.LoadError.invalid("tensor \(prefix).\(buffer.name) is missing or has the wrong shape")
                }
                _ = buffer.tensor.values.update(fromContentsOf: entry.values)
            }
            return network
        }
        let generator = try network("generator")
        let discriminator = try network("discriminator")
        guard generator.inputShape == [latentDim] else {
            throw TrainedModel.LoadError.invalid("the generator takes \(generator.inputShape), not [latent_dim] = [\(latentDim)]")
        }
        var standardization: Standardization?
        if case .object(let fields) = try json("preprocessing"),
           case .array(let mean)? = fields["mean"], case .array(let std)? = fields["std"], mean.count == std.count {
            standardization = Standardization(mean: mean.map(float), std: std.map(float))
        }
        var valueRange: (min: Float, max: Float)?
        if let text = metadata["value_range"], case .array(let bounds) = try JSONValue.parse(Data(text.utf8)), bounds.count == 2 {
            valueRange = (float(bounds[0]), float(bounds[1]))
        }
        return GANModel(generator: generator, discriminator: discriminator, latentDim: latentDim,
                        standardization: standardization, valueRange: valueRange)
    }

    private static func float(_ value: JSONValue) -> Float {
        if case .number(let number) = value { return Float(number) }
        return 0
    }
}
