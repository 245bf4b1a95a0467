import Foundation
import NeuralNetwork
import Optimizers
import Tensors

/// Everything a trainer needs to go on exactly where an epoch ended, as one safetensors file:
/// the network's parameters and buffers (`model.…`), the optimizer's state (`optimizer.…`), the
/// early-stopping snapshot (`best.<i>`) and the epoch's row order (`order`, U8 bytes of Int32),
/// with JSON metadata for the rest: epoch, metrics history, schedule, learning rates (as bit
/// patterns), every random generator (shuffle, augmentation, each dropout layer) and the
/// early-stopping counters. Restored into a trainer built from the same spec, the run continues
/// bit for bit as if it had never stopped (first-order optimizers; a second-order method's curvature
/// history is not saved and starts afresh).
public enum TrainingCheckpoint {
    static let format = "descent-checkpoint"

    struct Resumed {
        var epoch: Int
        var history: [EpochMetrics]
        var stoppedEarly: Bool
    }

    struct Generators: Codable {
        var shuffle: SeededGenerator
        var augmentation: SeededGenerator?
        var dropout: [SeededGenerator]
    }

    public enum LoadError: Error, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let message): "cannot resume from the checkpoint: \(message)" }
        }
    }
}

extension Trainer {
    /// The checkpoint of the state after `epoch`.
    func checkpoint(epoch: Int, history: [EpochMetrics], monitor: EarlyStoppingMonitor?, stoppedEarly: Bool) -> Data {
        var tensors: [SafeTensorsFile.Entry] = []
        for (name, parameter) in network.namedParameters {
            tensors.append(.init(name: "model.\(name)", shape: parameter.shape, values: parameter.value.array))
        }
        for buffer in network.namedBuffers {
            tensors.append(.init(name: "model.\(buffer.name)", shape: buffer.tensor.shape, values: buffer.tensor.array))
        }
        if case .firstOrder(let optimizer) = method {
            for (key, tensor) in optimizer.stateTensors().sorted(by: { $0.key < $1.key }) {
                tensors.append(.init(name: "optimizer.\(key)", shape: tensor.shape, values: tensor.array))
            }
        }
        for (index, tensor) in (monitor?.snapshotTensors ?? []).enumerated() {
            tensors.append(.init(name: "best.\(index)", shape: tensor.shape, values: tensor.array))
        }
        var orderBytes = [UInt8]()
        orderBytes.reserveCapacity(order.count * 4)
        for row in order { withUnsafeBytes(of: Int32(row).littleEndian) { orderBytes.append(contentsOf: $0) } }
        tensors.append(.init(name: "order", shape: [orderBytes.count], bytes: orderBytes))

        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func json<T: Encodable>(_ value: T) -> String { String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self) }
        let generators = TrainingCheckpoint.Generators(shuffle: shuffleGenerator, augmentation: augmenter?.generator,
                                                       dropout: network.stochasticLayers.map(\.generator))
        var metadata: [String: String] = [
            "format": TrainingCheckpoint.format, "version": "1", "epoch": String(epoch),
            "history": json(history), "generators": json(generators),
            "learning_rate": String(learningRate.bitPattern), "last_learning_rate": String(lastLearningRate.bitPattern),
            "stopped_early": String(stoppedEarly), "order_count": String(order.count),
        ]
        if let schedule = schedule { metadata["schedule"] = json(schedule) }
        if let monitor { metadata["early_stopping"] = json(monitor.state) }
        return SafeTensorsFile(tensors: tensors, metadata: metadata).serialized()
    }

    /// Puts a checkpoint's state back into this trainer (built from the same spec and data) and the
    /// early-stopping monitor; returns where to go on from.
    func restore(_ data: Data, monitor: inout EarlyStoppingMonitor?) throws -> TrainingCheckpoint.Resumed {
        typealias Failure = TrainingCheckpoint.LoadError
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile.parse(data) } catch { throw Failure.invalid("\(error)") }
        let metadata = file.metadata
        guard metadata["format"] == TrainingCheckpoint.format, metadata["version"] == "1",
              let epoch = metadata["epoch"].flatMap(Int.init)
        else { throw Failure.invalid("not a version 1 checkpoint") }
        var byName: [String: SafeTensorsFile.Entry] = [:]
        for entry in file.tensors { byName[entry.name] = entry }
        func values(_ name: String, count: Int) throws -> [Float] {
            guard let entry = byName[name], entry.bytes == nil, entry.values.count == count else {
                throw Failure.invalid("tensor \(name) is missing or has the wrong size")
            }
            return entry.values
        }
        for (name, parameter) in network.namedParameters {
            _ = parameter.value.values.update(fromContentsOf: try values("model.\(name)", count: parameter.count))
        }
        for buffer in network.namedBuffers {
            _ = buffer.tensor.values.update(fromContentsOf: try values("model.\(buffer.name)", count: buffer.tensor.count))
        }
        if case .firstOrder(let optimizer) = method {
            var state: [String: Tensor] = [:]
            for entry in file.tensors where entry.name.hasPrefix("optimizer.") {
                state[String(entry.name.dropFirst("optimizer.".count))] = Tensor(shape: entry.shape, values: entry.values)
            }
            do { try optimizer.restoreState(from: state) } catch { throw Failure.invalid("optimizer state: \(error)") }
        }
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            guard let text = metadata[key], let value = try? decoder.decode(type, from: Data(text.utf8)) else {
                throw Failure.invalid("metadata \(key) is missing or malformed")
            }
            return value
        }
        let history = try decode([EpochMetrics].self, "history")
        let generators = try decode(TrainingCheckpoint.Generators.self, "generators")
        let dropout = network.stochasticLayers
        guard generators.dropout.count == dropout.count, (generators.augmentation == nil) == (augmenter == nil) else {
            throw Failure.invalid("the checkpoint's random generators do not match this model")
        }
        for (layer, generator) in zip(dropout, generators.dropout) {
            var layer = layer
            layer.generator = generator
        }
        shuffleGenerator = generators.shuffle
        if let generator = generators.augmentation { augmenter?.generator = generator }
        guard let orderBytes = byName["order"]?.bytes, orderBytes.count % 4 == 0 else { throw Failure.invalid("the row order is missing") }
        let savedOrder = stride(from: 0, to: orderBytes.count, by: 4).map { offset in
            Int(Int32(littleEndian: orderBytes[offset..<(offset + 4)].enumerated().reduce(Int32(0)) { $0 | Int32($1.element) << (8 * $1.offset) }))
        }
        guard savedOrder.count == order.count, savedOrder.allSatisfy({ $0 >= 0 && $0 < self.data.train.rows }) else {
            throw Failure.invalid("the row order has \(savedOrder.count) rows; this training set has \(order.count)")
        }
        order = savedOrder
        if metadata["schedule"] != nil { schedule = try decode(LearningRateSchedule.self, "schedule") }
        guard let rateBits = metadata["learning_rate"].flatMap(UInt32.init), let lastBits = metadata["last_learning_rate"].flatMap(UInt32.init) else {
            throw Failure.invalid("metadata learning_rate is missing")
        }
        learningRate = Float(bitPattern: rateBits)
        lastLearningRate = Float(bitPattern: lastBits)
        if monitor != nil {
            let state = try decode(EarlyStoppingMonitor.State.self, "early_stopping")
            let snapshot = file.tensors.filter { $0.name.hasPrefix("best.") }
                .sorted { Int($0.name.dropFirst(5)) ?? 0 < Int($1.name.dropFirst(5)) ?? 0 }
                .map { Tensor(shape: $0.shape, values: $0.values) }
            monitor?.restore(state, snapshot: snapshot.isEmpty ? nil : snapshot)
        }
        return TrainingCheckpoint.Resumed(epoch: epoch, history: history, stoppedEarly: metadata["stopped_early"] == "true")
    }
}
