import Foundation
import NeuralNetwork
import Optimizers
import Tensors

/// Everything a trainer needs to go on exactly where an epoch ended, as one safetensors file:
/// networks' parameters and buffers (`<network>.…`), optimizers' state (`<optimizer>.…`), the
/// early-stopping snapshot (`best.<i>`) and the epoch's row order (`order`, U8 bytes of Int32),
/// with JSON metadata for the rest: epoch, metrics history, schedule, learning rates (as bit
/// patterns), every random generator and the early-stopping counters. Restored into a trainer built
/// from the same spec, the run continues bit for bit as if it had never stopped (first-order
/// optimizers; a second-order method's curvature history is not saved and starts afresh).
public enum TrainingCheckpoint {
    static let format = "descent-checkpoint"

    struct Resumed {
        var epoch: Int
        var history: [EpochMetrics]
        var stoppedEarly: Bool
    }

    public enum LoadError: Error, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let message): "cannot resume from the checkpoint: \(message)" }
        }
    }

    /// Collects a checkpoint's tensors and metadata.
    struct Writer {
        private(set) var tensors: [SafeTensorsFile.Entry] = []
        private(set) var metadata: [String: String]
        private let encoder: JSONEncoder = {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return encoder
        }()

        init(epoch: Int, history: [EpochMetrics]) {
            metadata = ["format": TrainingCheckpoint.format, "version": "1", "epoch": String(epoch)]
            set("history", history)
        }

        mutating func add(_ network: Network, as prefix: String) {
            for (name, parameter) in network.namedParameters {
                tensors.append(.init(name: "\(prefix).\(name)", shape: parameter.shape, values: parameter.value.array))
            }
            for buffer in network.namedBuffers {
                tensors.append(.init(name: "\(prefix).\(buffer.name)", shape: buffer.tensor.shape, values: buffer.tensor.array))
            }
        }

        mutating func add(_ optimizer: any Optimizer, as prefix: String) {
            for (key, tensor) in optimizer.stateTensors().sorted(by: { $0.key < $1.key }) {
                tensors.append(.init(name: "\(prefix).\(key)", shape: tensor.shape, values: tensor.array))
            }
        }

        mutating func add(_ tensors: [Tensor], as prefix: String) {
            for (index, tensor) in tensors.enumerated() {
                self.tensors.append(.init(name: "\(prefix).\(index)", shape: tensor.shape, values: tensor.array))
            }
        }

        /// A row order as little-endian Int32 bytes (exact, unlike F32 for large indices).
        mutating func add(order: [Int], as name: String) {
            var bytes = [UInt8]()
            bytes.reserveCapacity(order.count * 4)
            for row in order { withUnsafeBytes(of: Int32(row).littleEndian) { bytes.append(contentsOf: $0) } }
            tensors.append(.init(name: name, shape: [bytes.count], bytes: bytes))
        }

        mutating func set<Value: Encodable>(_ key: String, _ value: Value) {
            metadata[key] = String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
        }

        /// A Float exactly, as its bit pattern.
        mutating func set(_ key: String, bits value: Float) { metadata[key] = String(value.bitPattern) }

        var data: Data { SafeTensorsFile(tensors: tensors, metadata: metadata).serialized() }
    }

    /// Reads back what a `Writer` wrote; every miss is a `LoadError` naming it.
    struct Reader {
        let metadata: [String: String]
        let epoch: Int
        private let byName: [String: SafeTensorsFile.Entry]
        private let decoder = JSONDecoder()

        init(_ data: Data) throws {
            let file: SafeTensorsFile
            do { file = try SafeTensorsFile.parse(data) } catch { throw LoadError.invalid("\(error)") }
            metadata = file.metadata
            guard metadata["format"] == TrainingCheckpoint.format, metadata["version"] == "1",
                  let epoch = metadata["epoch"].flatMap(Int.init)
            else { throw LoadError.invalid("not a version 1 checkpoint") }
            self.epoch = epoch
            var byName: [String: SafeTensorsFile.Entry] = [:]
            for entry in file.tensors { byName[entry.name] = entry }
            self.byName = byName
        }

        private func values(_ name: String, count: Int) throws -> [Float] {
            guard let entry = byName[name], entry.bytes == nil, entry.values.count == count else {
                throw LoadError.invalid("tensor \(name) is missing or has the wrong size")
            }
            return entry.values
        }

        func restore(_ network: Network, from prefix: String) throws {
            for (name, parameter) in network.namedParameters {
                _ = parameter.value.values.update(fromContentsOf: try values("\(prefix).\(name)", count: parameter.count))
            }
            for buffer in network.namedBuffers {
                _ = buffer.tensor.values.update(fromContentsOf: try values("\(prefix).\(buffer.name)", count: buffer.tensor.count))
            }
        }

        func restore(_ optimizer: any Optimizer, from prefix: String) throws {
            var state: [String: Tensor] = [:]
            for (name, entry) in byName where name.hasPrefix("\(prefix).") {
                state[String(name.dropFirst(prefix.count + 1))] = Tensor(shape: entry.shape, values: entry.values)
            }
            do { try optimizer.restoreState(from: state) } catch { throw LoadError.invalid("\(prefix) state: \(error)") }
        }

        /// `<prefix>.0`, `<prefix>.1`, … in order; empty when there are none.
        func tensors(_ prefix: String) -> [Tensor] {
            byName.filter { $0.key.hasPrefix("\(prefix).") && Int($0.key.dropFirst(prefix.count + 1)) != nil }
                .sorted { Int($0.key.dropFirst(prefix.count + 1))! < Int($1.key.dropFirst(prefix.count + 1))! }
                .map { Tensor(shape: $0.value.shape, values: $0.value.values) }
        }

        /// A row order of `count` rows, each in 0..<`rows`.
        func order(_ name: String, count: Int, rows: Int) throws -> [Int] {
            guard let bytes = byName[name]?.bytes, bytes.count == count * 4 else {
                throw LoadError.invalid("the row order is missing or not of \(count) rows")
            }
            let order = stride(from: 0, to: bytes.count, by: 4).map { offset in
                Int(Int32(littleEndian: (0..<4).reduce(Int32(0)) { $0 | Int32(bytes[offset + $1]) << (8 * $1) }))
            }
            guard order.allSatisfy({ (0..<rows).contains($0) }) else { throw LoadError.invalid("the row order names rows this data does not have") }
            return order
        }

        func decode<Value: Decodable>(_ type: Value.Type, _ key: String) throws -> Value {
            guard let text = metadata[key], let value = try? decoder.decode(type, from: Data(text.utf8)) else {
                throw LoadError.invalid("metadata \(key) is missing or malformed")
            }
            return value
        }

        func float(bits key: String) throws -> Float {
            guard let bits = metadata[key].flatMap(UInt32.init) else { throw LoadError.invalid("metadata \(key) is missing") }
            return Float(bitPattern: bits)
        }
    }

    /// The random generators of a supervised run: batch order, augmentation and each dropout layer.
    struct Generators: Codable {
        var shuffle: SeededGenerator
        var augmentation: SeededGenerator?
        var dropout: [SeededGenerator]
        /// `distributed.replicas` > 1: the dropout generators of replicas 1…N−1 (absent otherwise).
        var replicaDropout: [[SeededGenerator]]? = nil
    }
}

extension Network {
    /// Puts back the dropout layers' generators, in `stochasticLayers` order.
    func restoreGenerators(_ generators: [SeededGenerator]) throws {
        let layers = stochasticLayers
        guard generators.count == layers.count else {
            throw TrainingCheckpoint.LoadError.invalid("the checkpoint has \(generators.count) dropout generators; this model has \(layers.count)")
        }
        for (layer, generator) in zip(layers, generators) {
            let layer = layer
            layer.generator = generator
        }
    }
}

extension Trainer {
    /// The checkpoint of the state after `epoch`.
    func checkpoint(epoch: Int, history: [EpochMetrics], monitor: EarlyStoppingMonitor?, stoppedEarly: Bool) -> Data {
        var writer = TrainingCheckpoint.Writer(epoch: epoch, history: history)
        writer.add(network, as: "model")
        if case .firstOrder(let optimizer) = method { writer.add(optimizer, as: "optimizer") }
        writer.add(monitor?.snapshotTensors ?? [], as: "best")
        writer.add(order: order, as: "order")
        writer.set("generators", TrainingCheckpoint.Generators(shuffle: shuffleGenerator, augmentation: augmenter?.generator,
                                                              dropout: network.stochasticLayers.map(\.generator),
                                                              replicaDropout: replicas?.replicaDropoutGenerators))
        writer.set("learning_rate", bits: learningRate)
        writer.set("last_learning_rate", bits: lastLearningRate)
        writer.set("stopped_early", stoppedEarly)
        if let schedule { writer.set("schedule", schedule) }
        if let monitor { writer.set("early_stopping", monitor.state) }
        return writer.data
    }

    /// Puts a checkpoint's state back into this trainer (built from the same spec and data) and the
    /// early-stopping monitor; returns where to go on from.
    func restore(_ data: Data, monitor: inout EarlyStoppingMonitor?) throws -> TrainingCheckpoint.Resumed {
        let reader = try TrainingCheckpoint.Reader(data)
        try reader.restore(network, from: "model")
        if case .firstOrder(let optimizer) = method { try reader.restore(optimizer, from: "optimizer") }
        let generators = try reader.decode(TrainingCheckpoint.Generators.self, "generators")
        guard (generators.augmentation == nil) == (augmenter == nil) else {
            throw TrainingCheckpoint.LoadError.invalid("the checkpoint's augmentation does not match this spec")
        }
        try network.restoreGenerators(generators.dropout)
        // Rank 0 writes the checkpoint: ranks > 0 restart their own dropout streams (documented: a resumed
        // multi-process run with dropout differs from an uninterrupted one there).
        if let ranks, !ranks.isRecorder { ranks.useReplicaDropoutStreams(seed: spec.training.seed) }
        if let replicaDropout = generators.replicaDropout { try replicas?.restoreReplicaDropoutGenerators(replicaDropout) }
        shuffleGenerator = generators.shuffle
        if let generator = generators.augmentation { augmenter?.generator = generator }
        order = try reader.order("order", count: order.count, rows: self.data.train.rows)
        if reader.metadata["schedule"] != nil { schedule = try reader.decode(LearningRateSchedule.self, "schedule") }
        learningRate = try reader.float(bits: "learning_rate")
        lastLearningRate = try reader.float(bits: "last_learning_rate")
        if monitor != nil {
            let snapshot = reader.tensors("best")
            monitor?.restore(try reader.decode(EarlyStoppingMonitor.State.self, "early_stopping"), snapshot: snapshot.isEmpty ? nil : snapshot)
        }
        return TrainingCheckpoint.Resumed(epoch: reader.epoch, history: try reader.decode([EpochMetrics].self, "history"),
                                          stoppedEarly: try reader.decode(Bool.self, "stopped_early"))
    }
}
