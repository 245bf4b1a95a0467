import Datasets
import Foundation
import Hummingbird
import JobStore
import Logging
import NeuralNetwork
import NIOCore
import Workers

/// `/v1/datasets`: upload (streamed to disk, parsed, checked), list, show, delete.
struct DatasetController {
    let datasets: any DatasetRepository
    let folder: DataFolder
    let maxUploadBytes: Int
    /// Most features one sample may have (`--max-features`).
    let maxFeatures: Int
    /// An upload must arrive whole within this time (`--upload-timeout`; 408 otherwise).
    let uploadTimeout: Duration
    /// How many datasets, and how many stored bytes, each tenant may keep.
    let quota: DatasetQuota
    let logger: Logger

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post(use: upload)
        group.get(use: list)
        group.get(":id", use: show)
        group.delete(":id", use: delete)
    }

    /// What an upload is, from its query: a CSV table, an IDX/NPY array (with or without its
    /// targets), or the labels of an array uploaded before (`labels_of`).
    private enum UploadKind {
        case csv(target: String?, task: LearningTask?)
        /// `target=last`: a 2-D NPY array whose last column is the target.
        case npyTable(task: LearningTask?)
        /// Samples whose labels come in a second upload.
        case samples(ArrayFormat)
        case labels(ArrayFormat, of: DatasetRecord, task: LearningTask?)
    }

    /// What the file turned out to hold.
    private enum ParsedUpload: Sendable {
        case table(TabularDataset)
        case samples(SampleArray)
        case labels(DatasetTargets)
    }

    @Sendable func upload(_ request: Request, context: AppRequestContext) async throws -> Response {
        let tenant = try context.tenant()
        let query = request.uri.queryParameters
        var issues: [SpecIssue] = []
        let name = query["name"].map(String.init) ?? "dataset"
        if name.isEmpty || name.count > 200 { issues.append(SpecIssue(path: "name", message: "must be 1 to 200 characters")) }
        // Names are never file names (files are named by id), but a name must be safe to show and to save under.
        else if let problem = Self.nameProblem(name) { issues.append(SpecIssue(path: "name", message: problem)) }
        let formatName = query["format"].map(String.init) ?? "csv"
        let arrayFormat = ArrayFormat(rawValue: formatName)
        if formatName != "csv" && arrayFormat == nil {
            issues.append(SpecIssue(path: "format", message: "must be csv, idx or npy, got \"\(formatName)\""))
        }
        let target = query["target"].map(String.init)
        var task: LearningTask?
        if let taskName = query["task"] {
            task = LearningTask(rawValue: String(taskName))
            if task == nil { issues.append(SpecIssue(path: "task", message: "must be classification or regression, got \"\(taskName)\"")) }
        }
        let labelsOf = query["labels_of"].map(String.init)
        if let labelsOf {
            if formatName == "csv" {
                issues.append(SpecIssue(path: "labels_of", message: "labels come in a second upload only for idx and npy data; a CSV's target is one of its columns (target=…)"))
            } else if labelsOf.isEmpty {
                issues.append(SpecIssue(path: "labels_of", message: "must be the id of the idx or npy dataset these labels belong to"))
            }
            if target != nil { issues.append(SpecIssue(path: "target", message: "a labels upload is the target; leave target out")) }
        } else if arrayFormat == .idx, target != nil {
            issues.append(SpecIssue(path: "target", message: "IDX data has no target column: upload the images, then their labels with format=idx&labels_of=<the images' dataset id>"))
        } else if arrayFormat == .npy, let target, target != "last" {
            issues.append(SpecIssue(path: "target", message: "for npy, target must be \"last\" (a 2-D array whose last column is the target), or left out and the labels uploaded next with format=npy&labels_of=<the dataset id>; got \"\(target)\""))
        } else if arrayFormat != nil, target == nil, query["task"] != nil {
            issues.append(SpecIssue(path: "task", message: "data without labels has no task yet; give task with its labels upload (labels_of)"))
        }
        // curl --data-binary sends application/x-www-form-urlencoded unless told otherwise: accept it as raw bytes.
        if let type = request.headers[.contentType]?.lowercased(),
           !["text/csv", "text/plain", "application/octet-stream", "application/csv", "application/x-www-form-urlencoded",
             "application/gzip", "application/x-gzip"]
               .contains(where: { type.hasPrefix($0) }) {
            throw APIError.unsupportedMediaType(type, expected: arrayFormat == nil
                ? "text/csv (the raw file as the body, e.g. curl --data-binary @file.csv)"
                : "application/octet-stream (the raw file as the body, e.g. curl --data-binary @train-images-idx3-ubyte.gz -H 'Content-Type: application/octet-stream')")
        }
        guard issues.isEmpty else { throw APIError.invalid(issues, message: "the upload's query is invalid") }

        let kind: UploadKind
        switch arrayFormat {
        case nil: kind = .csv(target: target, task: task)
        case let format?:
            if let labelsOf {
                // Checked again when the labels are attached, in the same transaction as the update.
                kind = .labels(format, of: try labelsTarget(labelsOf, tenant: tenant), task: task)
            } else {
                kind = target == "last" ? .npyTable(task: task) : .samples(format)
            }
        }

        // The tenant's quota, before reading the body: a tenant at its limit is refused at once, and
        // the body may be no bigger than what is left of its bytes. Checked again when the row is stored.
        let usage = try datasets.datasetUsage(tenant: tenant)
        let addsDataset = if case .labels = kind { false } else { true }
        if addsDataset, usage.count >= quota.maxDatasets {
            throw APIError.limit(JobStoreError.tooManyDatasets(tenant: tenant, limit: quota.maxDatasets))!
        }
        let bytesLeft = max(0, quota.maxBytes - usage.bytes)

        // Stream the body to a temporary file in the datasets folder; it only gets its final
        // name (and a row in the store) once it has been parsed and checked.
        let uploadId = makeIdentifier(prefix: "ds_")
        let temporary = folder.datasets.appendingPathComponent(".\(uploadId).upload")
        let bytes: Int
        do {
            bytes = try await stream(request.body, to: temporary, tenant: tenant, stored: usage.bytes, bytesLeft: bytesLeft)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        guard bytes > 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw APIError.invalid([SpecIssue(path: "body", message: "the file is empty")], message: "the dataset is invalid")
        }
        let parsed: ParsedUpload
        let compressed: Bool
        do {
            (parsed, compressed) = try await Self.parseOffLoop(temporary, kind, maxBytes: maxUploadBytes)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            if let error = error as? DatasetError {
                throw APIError.invalid([SpecIssue(path: "body", message: error.message)], message: "the dataset is invalid")
            }
            throw error
        }

        let featureCount: Int? = switch parsed {
        case .table(let dataset): dataset.featureCount
        case .samples(let samples): samples.featureCount
        case .labels: nil
        }
        if let featureCount, featureCount > maxFeatures {
            try? FileManager.default.removeItem(at: temporary)
            throw APIError.invalid([SpecIssue(path: "body", message: "a sample has \(featureCount) features; the limit is \(maxFeatures) (--max-features)")],
                                   message: "the dataset is invalid")
        }
        if case .labels(let format, let images, _) = kind, case .labels(let targets) = parsed {
            return try attach(targets, format: format, compressed: compressed, bytes: bytes, to: images, from: temporary,
                              uploadId: uploadId)
        }
        let record: DatasetRecord
        switch (kind, parsed) {
        case (.csv(let target, _), .table(let dataset)):
            record = DatasetRecord(
                id: uploadId, tenant: tenant, name: name, format: "csv", rows: dataset.rows, features: dataset.featureCount,
                featureNames: dataset.featureNames, target: target ?? dataset.targetName, task: dataset.task.rawValue,
                classes: dataset.classes, shape: dataset.sampleShape, bytes: bytes, fileName: "\(uploadId).csv", createdAt: Date())
        case (.npyTable, .table(let dataset)):
            record = DatasetRecord(
                id: uploadId, tenant: tenant, name: name, format: "npy", rows: dataset.rows, features: dataset.featureCount,
                featureNames: dataset.featureNames, target: "last", task: dataset.task.rawValue, classes: dataset.classes,
                shape: dataset.sampleShape, bytes: bytes,
                fileName: ArrayFormat.storedFileName(uploadId, format: .npy, compressed: compressed), createdAt: Date())
        case (.samples(let format), .samples(let samples)):
            record = DatasetRecord(
                id: uploadId, tenant: tenant, name: name, format: format.rawValue, rows: samples.rows, features: samples.featureCount,
                featureNames: [], target: nil, task: DatasetRecord.unlabeledTask, classes: nil,
                shape: samples.sampleShape, bytes: bytes,
                fileName: ArrayFormat.storedFileName(uploadId, format: format, compressed: compressed), createdAt: Date())
        default:
            try? FileManager.default.removeItem(at: temporary)
            preconditionFailure("an upload of kind \(kind) parsed as \(parsed)")
        }
        let fileName = record.fileName
        do {
            try FileManager.default.moveItem(at: temporary, to: folder.datasets.appendingPathComponent(fileName))
            try DataFolder.syncFolder(folder.datasets)
            try datasets.insertDataset(record, quota: quota)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            try? FileManager.default.removeItem(at: folder.datasets.appendingPathComponent(fileName))
            throw APIError.limit(error) ?? error
        }
        logger.info("dataset uploaded", metadata: ["dataset": "\(uploadId)", "format": "\(record.format)", "rows": "\(record.rows)", "bytes": "\(bytes)"])
        // Answer with the row as stored (the store keeps created_at to the millisecond), so this answer
        // and a later GET /v1/datasets/{id} agree.
        let stored = (try? datasets.dataset(id: uploadId, tenant: tenant)) ?? record
        return jsonResponse(stored.json, status: .created, headers: [.location: "/v1/datasets/\(uploadId)"])
    }

    /// What is wrong with a dataset name, if anything: control characters (NUL included), path
    /// separators, or a name that is only dots.
    static func nameProblem(_ name: String) -> String? {
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }) {
            return "must not contain control characters"
        }
        if name.contains("/") || name.contains("\\") { return "must not contain / or \\" }
        if name.allSatisfy({ $0 == "." }) { return "must not be . or .." }
        return nil
    }

    /// The dataset a labels upload names: it must be the tenant's, be IDX or NPY data and still wait for labels.
    private func labelsTarget(_ id: String, tenant: String) throws -> DatasetRecord {
        guard ResourceKind.dataset.isWellFormed(id), let record = try datasets.dataset(id: id, tenant: tenant) else {
            throw APIError.invalid([SpecIssue(path: "labels_of", message: "no dataset with id \(id); upload the images (format=idx) or features (format=npy) first")],
                                   message: "the upload's query is invalid")
        }
        guard record.format != "csv" else {
            throw APIError.invalid([SpecIssue(path: "labels_of", message: "dataset \(id) is a CSV; its target is one of its columns, not a second upload")],
                                   message: "the upload's query is invalid")
        }
        guard record.isUnlabeled else { throw APIError.conflict(Self.alreadyLabeled(record)) }
        return record
    }

    private static func alreadyLabeled(_ record: DatasetRecord) -> String {
        record.labelsFileName == nil
            ? "dataset \(record.id) is not waiting for labels: its targets came with its data (target=\(record.target ?? "last"))"
            : "dataset \(record.id) already has labels; upload the data again to use other labels"
    }

    /// Stores a labels file beside its data and records it: the file first, under a name of its
    /// own (two racing uploads never overwrite each other's file), then the row, in one transaction
    /// that checks the data still waits for labels. The loser's file is removed.
    private func attach(
        _ targets: DatasetTargets, format: ArrayFormat, compressed: Bool, bytes: Int, to images: DatasetRecord,
        from temporary: URL, uploadId: String
    ) throws -> Response {
        guard targets.count == images.rows else {
            try? FileManager.default.removeItem(at: temporary)
            let message = "the labels file has \(targets.count) \(targets.count == 1 ? "label" : "labels") but dataset \(images.id) has \(images.rows) \(images.rows == 1 ? "sample" : "samples"); every sample needs one label"
            throw APIError.invalid([SpecIssue(path: "body", message: message)], message: "the labels are invalid")
        }
        let labelsFile = folder.datasets.appendingPathComponent(
            ArrayFormat.storedFileName("\(images.id).labels-\(uploadId.dropFirst(3))", format: format, compressed: compressed))
        let updated: DatasetRecord?
        do {
            try FileManager.default.moveItem(at: temporary, to: labelsFile)
            try DataFolder.syncFolder(folder.datasets)
            updated = try datasets.attachLabels(datasetId: images.id, labelsFileName: labelsFile.lastPathComponent, labelsBytes: bytes,
                                                task: targets.task.rawValue, classes: targets.classes, quota: quota)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            try? FileManager.default.removeItem(at: labelsFile)
            if case JobStoreError.wrongState = error, let current = try? datasets.dataset(id: images.id, tenant: images.tenant) {
                throw APIError.conflict(Self.alreadyLabeled(current))
            }
            throw APIError.limit(error) ?? error
        }
        guard let updated else {
            try? FileManager.default.removeItem(at: labelsFile)
            throw APIError.invalid([SpecIssue(path: "labels_of", message: "dataset \(images.id) was deleted during the upload")],
                                   message: "the upload's query is invalid")
        }
        logger.info("dataset labels uploaded", metadata: ["dataset": "\(images.id)", "task": "\(updated.task)", "bytes": "\(bytes)"])
        return jsonResponse(updated.json)
    }

    /// Writes the body to `url`, refusing more than `maxUploadBytes`, or than the tenant's
    /// `bytesLeft` (413 naming that limit), without buffering it.
    private func stream(_ body: RequestBody, to url: URL, tenant: String, stored: Int, bytesLeft: Int) async throws -> Int {
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw APIError(status: .internalServerError, code: "storage_error", message: "cannot write to the data folder")
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        let (maxUploadBytes, maxBytes) = (self.maxUploadBytes, quota.maxBytes)
        return try await withBodyDeadline(uploadTimeout) {
            var total = 0
            for try await part in body {
                total += part.readableBytes
                if total > maxUploadBytes { throw APIError.tooLarge(limit: maxUploadBytes, what: "the upload (--max-upload-bytes)") }
                if total > bytesLeft {
                    throw APIError.limit(JobStoreError.datasetBytesExceeded(tenant: tenant, stored: stored, adding: total, limit: maxBytes))!
                }
                try handle.write(contentsOf: part.readableBytesView)
            }
            try handle.synchronize()
            return total
        }
    }

    /// Parsing is CPU work: off the cooperative threads (`offCooperativePool`). Also says whether the file is gzip.
    private static func parseOffLoop(_ url: URL, _ kind: UploadKind, maxBytes: Int) async throws -> (ParsedUpload, compressed: Bool) {
        try await offCooperativePool {
            switch kind {
            case .csv(let target, let task):
                return (.table(try CSVParser.parse(contentsOf: url, target: target, task: task)), false)
            case .npyTable(let task):
                let data = try ArrayFormat.contents(of: url)
                return (.table(try NPYParser.readTable(data: data, task: task, maxBytes: maxBytes)), Gzip.isCompressed(data))
            case .samples(let format):
                let data = try ArrayFormat.contents(of: url)
                return (.samples(try format.readSamples(data: data, maxBytes: maxBytes)), Gzip.isCompressed(data))
            case .labels(let format, _, let task):
                let data = try ArrayFormat.contents(of: url)
                let labels = try format.readLabels(data: data, maxBytes: maxBytes)
                return (.labels(try DatasetTargets(labels: labels, task: task)), Gzip.isCompressed(data))
            }
        }
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        jsonResponse(["datasets": .array(try datasets.listDatasets(tenant: try context.tenant()).map(\.json))])
    }

    @Sendable func show(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try context.requireID(.dataset)
        guard let record = try datasets.dataset(id: id, tenant: try context.tenant()) else { throw APIError.notFound("dataset", id) }
        return jsonResponse(record.json)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try context.requireID(.dataset)
        do {
            let tenant = try context.tenant()
            guard try folder.withRoomToDelete({ try datasets.deleteDataset(id: id, tenant: tenant) }) else { throw APIError.notFound("dataset", id) }
        } catch JobStoreError.datasetInUse {
            throw APIError.conflict("dataset \(id) is used by a queued or running job")
        }
        // Every file of the dataset (data, and labels if a second upload gave them), whatever
        // the record said when it was read.
        folder.removeFiles(ofDataset: id)
        folder.restoreReserve()
        return Response(status: .noContent)
    }
}

extension DatasetRecord {
    var json: JSONValue {
        ["id": JSONValue(id), "name": JSONValue(name), "format": JSONValue(format), "rows": JSONValue(rows),
         "features": JSONValue(features), "feature_names": featureNames.isEmpty ? .null : JSONValue(featureNames), "target": JSONValue(target),
         "task": JSONValue(task), "classes": classes.map { JSONValue($0) } ?? .null, "shape": JSONValue(shape),
         "created_at": JSONValue(createdAt.rfc3339), "bytes": JSONValue(bytes)]
    }
}
