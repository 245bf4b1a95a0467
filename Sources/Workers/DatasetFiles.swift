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
    /// Running jobs' checkpoints, `<job>.epoch-<n>.ckpt`; removed when the job finishes.
    public var checkpoints: URL { root.appendingPathComponent("checkpoints", isDirectory: true) }

    public func checkpointFile(jobId: String, epoch: Int) -> URL {
        checkpoints.appendingPathComponent("\(jobId).epoch-\(epoch).ckpt")
    }

    /// Removes a job's checkpoints, all of them or all but the one of epoch `keeping`.
    public func removeCheckpoints(ofJob id: String, keeping epoch: Int? = nil) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []
        let kept = epoch.map { checkpointFile(jobId: id, epoch: $0).lastPathComponent }
        // `.<job>.…tmp`: a write a crash interrupted (writeAtomically's temporary file).
        for name in names where (name.hasPrefix("\(id).") || name.hasPrefix(".\(id).")) && name != kept {
            try? FileManager.default.removeItem(at: checkpoints.appendingPathComponent(name))
        }
    }

    public func datasetFile(_ record: DatasetRecord) -> URL { datasets.appendingPathComponent(record.fileName) }
    /// The labels file of an IDX or NPY dataset whose labels were a second upload.
    public func labelsFile(_ record: DatasetRecord) -> URL? { record.labelsFileName.map { datasets.appendingPathComponent($0) } }

    /// Removes every stored file of a dataset: all are named `<id>.…` (data, labels).
    public func removeFiles(ofDataset id: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: datasets.path)) ?? []
        for name in names where name.hasPrefix("\(id).") {
            try? FileManager.default.removeItem(at: datasets.appendingPathComponent(name))
        }
    }
    /// The model `/model` serves: the last stage of the compression pipeline, or the trained model.
    public func modelFile(jobId: String) -> URL { models.appendingPathComponent("\(jobId).safetensors") }
    /// One stage of a compressed job (`trained`, `pruned`, `quantized`…).
    public func modelFile(jobId: String, stage: String) -> URL { models.appendingPathComponent("\(jobId).\(stage).safetensors") }
    /// `GET /v1/jobs/{id}/report`, written once the pipeline has finished.
    public func reportFile(jobId: String) -> URL { models.appendingPathComponent("\(jobId).report.json") }

    /// Removes every stored file of a job: its model, its stages, its report, and a write a crash
    /// interrupted (`.<job>.…tmp`).
    public func removeFiles(ofJob id: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: models.path)) ?? []
        for name in names where name.hasPrefix("\(id).") || name.hasPrefix(".\(id).") {
            try? FileManager.default.removeItem(at: models.appendingPathComponent(name))
        }
    }

    /// What a crash leaves in the folders, removed at start-up: files of datasets and jobs the store no
    /// longer has (a delete stops between the row and the files), partial uploads (`.<id>.upload`),
    /// interrupted writes (`.<name>.<uuid>.tmp`) and checkpoints of finished jobs. Only files untouched
    /// for `olderThan` go: the servers of a fleet share the folder, and another may be writing them now.
    /// A file whose owner the store cannot be asked about (it throws) is kept. Returns the paths removed.
    @discardableResult
    public func removeLeftovers(olderThan age: TimeInterval, datasetExists: (String) throws -> Bool,
                                jobState: (String) throws -> JobStatus?, now: Date = Date()) -> [String] {
        var removed: [String] = []
        func sweep(_ folder: URL, keep: (_ owner: String, _ temporary: Bool) throws -> Bool) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            for name in names {
                let url = folder.appendingPathComponent(name)
                let modified = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? now
                guard now.timeIntervalSince(modified) > age else { continue }
                let temporary = name.hasPrefix(".")
                let owner = String((temporary ? name.dropFirst() : Substring(name)).prefix { $0 != "." })
                if (try? keep(owner, temporary)) == false {
                    try? FileManager.default.removeItem(at: url)
                    removed.append(url.path)
                }
            }
        }
        // An upload older than the age limit is dead; a dataset file counts while its row exists.
        sweep(datasets) { owner, temporary in try !temporary && datasetExists(owner) }
        // Models and reports of existing jobs; an interrupted write only while its job still runs.
        sweep(models) { owner, temporary in
            guard let state = try jobState(owner) else { return false }
            return !temporary || !state.isFinished
        }
        // Checkpoints matter until their job finishes.
        sweep(checkpoints) { owner, _ in try jobState(owner).map { !$0.isFinished } ?? false }
        return removed
    }

    /// A file of `reserveBytes` zeros kept in the data folder: on a disk full to the last byte even a
    /// delete fails (SQLite writes its WAL to remove a row), so a delete that meets a full disk frees
    /// this and tries again, and the operator's way out, deleting through the API, stays open.
    public var reserve: URL { root.appendingPathComponent(".reserve") }
    public static let reserveBytes = 4 << 20

    /// Removes the reserve; false if there was none.
    @discardableResult
    public func releaseReserve() -> Bool { (try? FileManager.default.removeItem(at: reserve)) != nil }

    /// Writes the reserve again if it is missing and the disk has room for it (else leaves none).
    public func restoreReserve() {
        guard !FileManager.default.fileExists(atPath: reserve.path) else { return }
        try? Self.writeAtomically(Data(count: Self.reserveBytes), to: reserve)
    }

    /// Runs a delete; if it meets a full disk, frees the reserve and runs it once more.
    public func withRoomToDelete<T>(_ delete: () throws -> T) throws -> T {
        do {
            return try delete()
        } catch where OutOfSpace.describes(error) && releaseReserve() {
            return try delete()
        }
    }

    /// Creates the folders owner-only (0700), and makes existing ones so: datasets and models are the
    /// tenants' data. (`descent serve` also sets its umask to 077, so every file in them is 0600.)
    public func createFolders() throws {
        for folder in [root, datasets, models, checkpoints] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: folder.path)
        }
    }

    /// Makes a rename into `folder` durable: the folder's entry is on disk once this returns, so a row
    /// written after it never names a file a crash could take back.
    public static func syncFolder(_ folder: URL) throws {
        let descriptor = open(folder.path, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// Writes `data` so that readers see either nothing or the whole file: temp file (0600), fsync,
    /// rename, fsync of the folder (the file is durable before anyone is told it exists).
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            try handle.write(contentsOf: data)
            try handle.synchronize()
            try handle.close()
            if rename(temporary.path, url.path) != 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            try syncFolder(url.deletingLastPathComponent())
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Reads an uploaded dataset back into memory.
    public func load(_ record: DatasetRecord) throws -> TabularDataset {
        let task = LearningTask(rawValue: record.task)
        guard let format = ArrayFormat(rawValue: record.format) else {
            return try CSVParser.parse(contentsOf: datasetFile(record), target: record.target, task: task)
        }
        guard !record.isUnlabeled else { throw DatasetError(record.missingLabelsMessage) }
        let data = try ArrayFormat.contents(of: datasetFile(record))
        guard let labelsFile = labelsFile(record) else {
            // Targets that came with the data: an NPY table whose last column is the target.
            return try NPYParser.readTable(data: data, task: task)
        }
        let samples = try format.readSamples(data: data)
        let labelsFormat = ArrayFormat.ofStoredFile(labelsFile.lastPathComponent) ?? format
        let labels = try labelsFormat.readLabels(data: ArrayFormat.contents(of: labelsFile))
        return try TabularDataset(samples: samples, targets: DatasetTargets(labels: labels, task: task))
    }
}

extension DatasetSummary {
    public init(_ record: DatasetRecord) {
        self.init(rows: record.rows, sampleShape: record.shape, task: LearningTask(rawValue: record.task) ?? .classification,
                  classCount: record.classes?.count, targetCount: record.task == "regression" ? 1 : (record.classes?.count ?? 1))
    }
}

extension DatasetRecord {
    /// Why no job can train on data that waits for its labels, and what to do about it.
    public var missingLabelsMessage: String {
        "dataset \(id) has no labels; upload them with POST /v1/datasets?format=\(format)&labels_of=\(id) (the labels file as the body)"
    }
}

extension ArrayFormat {
    /// The stored file names of IDX and NPY uploads: `<id>.idx`, `<id>.labels-<upload>.npy.gz`, ….
    public static func storedFileName(_ stem: String, format: ArrayFormat, compressed: Bool) -> String {
        "\(stem).\(format.rawValue)\(compressed ? ".gz" : "")"
    }

    /// The format a stored file name says (`….idx`, `….npy.gz`).
    public static func ofStoredFile(_ name: String) -> ArrayFormat? {
        let plain = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
        return ArrayFormat(rawValue: (plain as NSString).pathExtension)
    }
}
