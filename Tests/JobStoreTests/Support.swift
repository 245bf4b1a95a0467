import Foundation
@testable import JobStore

/// Runs `body` with a fresh folder that is removed afterwards.
func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
    let folder = FileManager.default.temporaryDirectory
        .appendingPathComponent("jobstore-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    return try body(folder)
}

func makeNewJob(
    name: String? = nil, priority: Int = 0, datasetId: String = "builtin:spirals",
    epochs: Int = 10, idempotencyKey: String? = nil
) -> NewJob {
    NewJob(
        name: name, priority: priority, datasetId: datasetId,
        spec: #"{"dataset":{"builtin":"spirals"},"model":{"preset":"mlp"}}"#,
        epochs: epochs, idempotencyKey: idempotencyKey
    )
}

func makeMetricsRow(jobId: String, epoch: Int, trainLoss: Double = 0.5) -> MetricsRow {
    MetricsRow(
        jobId: jobId, epoch: epoch, trainLoss: trainLoss, trainAccuracy: 0.8, valLoss: 0.6,
        valAccuracy: nil, lr: 0.001, gradNorm: 1.25, penalty: 0, sparsity: 0.1,
        seconds: 0.75, samplesPerSecond: 2048
    )
}

/// Whole seconds: the database keeps milliseconds, so the record reads back equal.
func makeDataset(id: String = makeIdentifier(prefix: "ds_"), createdAt: TimeInterval = 1_700_000_000) -> DatasetRecord {
    DatasetRecord(
        id: id, name: "digits", format: "csv", rows: 1797, features: 64,
        featureNames: (0..<64).map { "pixel\($0)" }, target: "label", task: "classification",
        classes: (0...9).map(String.init), shape: [1797, 64], bytes: 123_456,
        fileName: "\(id).csv", createdAt: Date(timeIntervalSince1970: createdAt)
    )
}

/// A value shared by test threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
