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
    let logger: Logger

    func addRoutes(to group: RouterGroup<some RequestContext>) {
        group.post(use: upload)
        group.get(use: list)
        group.get(":id", use: show)
        group.delete(":id", use: delete)
    }

    @Sendable func upload(_ request: Request, context: some RequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var issues: [SpecIssue] = []
        let name = query["name"].map(String.init) ?? "dataset"
        if name.isEmpty || name.count > 200 { issues.append(SpecIssue(path: "name", message: "must be 1 to 200 characters")) }
        let format = query["format"].map(String.init) ?? "csv"
        if format != "csv" {
            let message = ["idx", "npy"].contains(format)
                ? "format \"\(format)\" is not supported yet; upload CSV (format=csv)" : "must be csv, got \"\(format)\""
            issues.append(SpecIssue(path: "format", message: message))
        }
        let target = query["target"].map(String.init)
        var task: LearningTask?
        if let taskName = query["task"] {
            task = LearningTask(rawValue: String(taskName))
            if task == nil { issues.append(SpecIssue(path: "task", message: "must be classification or regression, got \"\(taskName)\"")) }
        }
        if query["labels_of"] != nil { issues.append(SpecIssue(path: "labels_of", message: "label uploads for IDX images are not supported yet")) }
        // curl --data-binary sends application/x-www-form-urlencoded unless told otherwise: accept it as raw bytes.
        if let type = request.headers[.contentType]?.lowercased(),
           !["text/csv", "text/plain", "application/octet-stream", "application/csv", "application/x-www-form-urlencoded"]
               .contains(where: { type.hasPrefix($0) }) {
            throw APIError.unsupportedMediaType(type, expected: "text/csv (the raw file as the body, e.g. curl --data-binary @file.csv)")
        }
        guard issues.isEmpty else { throw APIError.invalid(issues, message: "the upload's query is invalid") }

        // Stream the body to a temporary file in the datasets folder; it only gets its final
        // name (and a row in the store) once it has been parsed and checked.
        let id = makeIdentifier(prefix: "ds_")
        let temporary = folder.datasets.appendingPathComponent(".\(id).upload")
        let bytes: Int
        do {
            bytes = try await stream(request.body, to: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        guard bytes > 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw APIError.invalid([SpecIssue(path: "body", message: "the file is empty")], message: "the dataset is invalid")
        }
        let dataset: TabularDataset
        do {
            dataset = try await Self.parseOffLoop(temporary, target: target, task: task)
        } catch let error as DatasetError {
            try? FileManager.default.removeItem(at: temporary)
            throw APIError.invalid([SpecIssue(path: "body", message: error.message)], message: "the dataset is invalid")
        }
        let fileName = "\(id).csv"
        let record = DatasetRecord(
            id: id, name: name, format: format, rows: dataset.rows, features: dataset.featureCount, featureNames: dataset.featureNames,
            target: target ?? dataset.targetName, task: dataset.task.rawValue, classes: dataset.classes, shape: dataset.sampleShape,
            bytes: bytes, fileName: fileName, createdAt: Date())
        do {
            try FileManager.default.moveItem(at: temporary, to: folder.datasets.appendingPathComponent(fileName))
            try datasets.insertDataset(record)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            try? FileManager.default.removeItem(at: folder.datasets.appendingPathComponent(fileName))
            throw error
        }
        logger.info("dataset uploaded", metadata: ["dataset": "\(id)", "rows": "\(dataset.rows)", "bytes": "\(bytes)"])
        // Answer with the row as stored (the store keeps created_at to the millisecond), so this answer
        // and a later GET /v1/datasets/{id} agree.
        let stored = (try? datasets.dataset(id: id)) ?? record
        return jsonResponse(stored.json, status: .created, headers: [.location: "/v1/datasets/\(id)"])
    }

    /// Writes the body to `url`, refusing more than `maxUploadBytes` (413) without buffering it.
    private func stream(_ body: RequestBody, to url: URL) async throws -> Int {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw APIError(status: .internalServerError, code: "storage_error", message: "cannot write to the data folder")
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var total = 0
        for try await part in body {
            total += part.readableBytes
            if total > maxUploadBytes { throw APIError.tooLarge(limit: maxUploadBytes) }
            try handle.write(contentsOf: part.readableBytesView)
        }
        try handle.synchronize()
        return total
    }

    /// Parsing is CPU work: keep it off the event loop.
    private static func parseOffLoop(_ url: URL, target: String?, task: LearningTask?) async throws -> TabularDataset {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do { continuation.resume(returning: try CSVParser.parse(contentsOf: url, target: target, task: task)) }
                catch { continuation.resume(throwing: error) }
            }
        }
    }

    @Sendable func list(_ request: Request, context: some RequestContext) async throws -> Response {
        jsonResponse(["datasets": .array(try datasets.listDatasets().map(\.json))])
    }

    @Sendable func show(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard let record = try datasets.dataset(id: id) else { throw APIError.notFound("dataset", id) }
        return jsonResponse(record.json)
    }

    @Sendable func delete(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard let record = try datasets.dataset(id: id) else { throw APIError.notFound("dataset", id) }
        do {
            guard try datasets.deleteDataset(id: id) else { throw APIError.notFound("dataset", id) }
        } catch JobStoreError.datasetInUse {
            throw APIError.conflict("dataset \(id) is used by a queued or running job")
        }
        try? FileManager.default.removeItem(at: folder.datasetFile(record))
        return Response(status: .noContent)
    }
}

extension DatasetRecord {
    var json: JSONValue {
        ["id": JSONValue(id), "name": JSONValue(name), "format": JSONValue(format), "rows": JSONValue(rows),
         "features": JSONValue(features), "feature_names": JSONValue(featureNames), "target": JSONValue(target),
         "task": JSONValue(task), "classes": classes.map { JSONValue($0) } ?? .null, "shape": JSONValue(shape),
         "created_at": JSONValue(createdAt.rfc3339), "bytes": JSONValue(bytes)]
    }
}
