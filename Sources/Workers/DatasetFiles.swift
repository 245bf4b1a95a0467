import Datasets
import Foundation
import JobStore
import Training

/// Where uploaded datasets and trained models live in the data folder, and how to read them.
public struct DataFolder: Sendable {
    public let root: URL
    public init(root: URL) { self.root = root }

    public var datasets: URL { root.appendingPathComponent("datasets", isDirectory: true) }
    public var models: URL { root.appendingPathComponent("models", isDirectory: true) }

    public func datasetFile(_ record: DatasetRecord) -> URL { datasets.appendingPathComponent(record.fileName) }
    public func modelFile(jobId: String) -> URL { models.appendingPathComponent("\(jobId).safetensors") }

    public func createFolders() throws {
        for folder in [root, datasets, models] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
    }

    /// Writes `data` so that readers see either nothing or the whole file: temp file, fsync, rename.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
            if rename(temporary.path, url.path) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Reads an uploaded dataset back into memory.
    public func load(_ record: DatasetRecord) throws -> TabularDataset {
        let task = LearningTask(rawValue: record.task)
        return try CSVParser.parse(contentsOf: datasetFile(record), target: record.target, task: task)
    }
}

extension DatasetSummary {
    public init(_ record: DatasetRecord) {
        self.init(rows: record.rows, sampleShape: record.shape, task: LearningTask(rawValue: record.task) ?? .classification,
                  classCount: record.classes?.count, targetCount: record.task == "regression" ? 1 : (record.classes?.count ?? 1))
    }
}
