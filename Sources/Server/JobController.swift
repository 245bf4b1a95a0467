import Datasets
import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import JobStore
import NeuralNetwork
import Synchronization
import Training
import Workers

/// `/v1/jobs`: submit (durably, before answering), validate, list, show, metrics, live events,
/// cancel, delete, model download and prediction.
struct JobController {
    let jobs: any JobRepository
    let datasets: any DatasetRepository
    let deliveries: any WebhookDeliveryRepository
    let folder: DataFolder
    let pool: WorkerPool
    let events: JobEventHub
    /// Specs (`POST /v1/jobs`, `/validate`) and prediction inputs.
    let specBody: JSONBodyLimits
    let predictionBody: JSONBodyLimits
    let limits: JobLimits
    /// What a tenant's queued and running jobs may hold together.
    let tenantLimits: TenantLimits
    let models = ModelCache()
    let ganModels = GANModelCache()

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post(use: create)
        group.post("validate", use: validate)
        group.get(use: list)
        group.get(":id", use: show)
        group.delete(":id", use: delete)
        group.get(":id/metrics", use: metrics)
        group.get(":id/events", use: eventStream)
        group.post(":id/cancel", use: cancel)
        group.get(":id/model", use: model)
        group.get(":id/report", use: report)
        group.get(":id/deliveries", use: webhookDeliveries)
        group.post(":id/predict", use: predict)
        group.get(":id/samples", use: samples)
    }

    // MARK: Submitting

    /// Parses the spec and checks it against the tenant's data and jobs; every problem becomes a 422 detail.
    private func checkedSpec(_ request: Request, tenant: String) async throws -> JobSpec {
        let json = try await request.decodeJSONBody(specBody)
        var checker = JobSpecChecker(datasets: datasets, jobs: jobs, folder: folder, tenant: tenant, limits: limits)
        do { return try checker.check(json) } catch let problems as SpecProblems {
            throw APIError.invalid(problems.issues)
        }
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let tenant = try context.tenant()
        let spec = try await checkedSpec(request, tenant: tenant)
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let key, key.isEmpty || key.count > 255 { throw APIError.badRequest("Idempotency-Key must be 1 to 255 characters") }
        let job: JobRecord, created: Bool
        do {
            (job, created) = try jobs.createJob(NewJob(spec, tenant: tenant, name: spec.name, idempotencyKey: key), limits: tenantLimits)
        } catch { throw APIError.limit(error) ?? error }
        if created {
            // Told before a worker is woken, so that `queued` never follows `running`.
            events.publish(.status(jobId: job.id, status: .queued))
            pool.jobWasQueued()
        }
        return jsonResponse(["id": JSONValue(job.id), "status": JSONValue(job.status.rawValue), "links": job.links],
                            status: created ? .created : .ok, headers: [.location: "/v1/jobs/\(job.id)"])
    }

    @Sendable func validate(_ request: Request, context: AppRequestContext) async throws -> Response {
        let spec = try await checkedSpec(request, tenant: try context.tenant())
        // Counted from the spec's shapes: no need to allocate the weights of a model we only describe.
        let size = spec.size ?? (parameters: 0, flopsPerSample: 0)
        return jsonResponse(["valid": true, "parameters": JSONValue(size.parameters),
                             "flops_per_sample": JSONValue(size.flopsPerSample), "spec": spec.jsonValue])
    }

    // MARK: Reading

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var status: JobStatus?
        if let name = query["status"] {
            guard let parsed = JobStatus(rawValue: String(name)) else {
                throw APIError.invalid([SpecIssue(path: "status", message: "must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")],
                                       message: "the query is invalid")
            }
            status = parsed
        }
        var limit = 50
        if let text = query["limit"] {
            guard let parsed = Int(text), (1...500).contains(parsed) else {
                throw APIError.invalid([SpecIssue(path: "limit", message: "must be an integer between 1 and 500, got \"\(text)\"")],
                                       message: "the query is invalid")
            }
            limit = parsed
        }
        let page: (jobs: [JobRecord], nextCursor: String?)
        do {
            page = try jobs.listJobs(tenant: try context.tenant(), status: status, limit: limit, cursor: query["cursor"].map(String.init))
        } catch JobStoreError.invalidCursor(let cursor) {
            throw APIError.invalid([SpecIssue(path: "cursor", message: "is not a cursor this server gave out: \"\(cursor)\"; use next_cursor of the previous page")],
                                   message: "the query is invalid")
        }
        return jsonResponse(["jobs": .array(page.jobs.map { $0.json(includeSpec: false) }), "next_cursor": JSONValue(page.nextCursor)])
    }

    /// The path's job if it is the request's tenant's; 404 otherwise, as for an unknown id.
    func requireJob(_ context: AppRequestContext) throws -> JobRecord {
        let id = try context.requireID(.job)
        guard let job = try jobs.job(id: id, tenant: try context.tenant()) else { throw APIError.notFound("job", id) }
        return job
    }

    @Sendable func show(_ request: Request, context: AppRequestContext) async throws -> Response {
        jsonResponse(try requireJob(context).json(includeSpec: true))
    }

    @Sendable func metrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        return jsonResponse(["epochs": .array(try jobs.metrics(jobId: job.id).map(\.json))])
    }

    /// Server-Sent Events of one job: `status`, `epoch` (the metrics row), `log`, `done`.
    ///
    /// Each `epoch` event has the epoch as its `id`, so a client that reconnects with
    /// `Last-Event-ID: n` (browsers' EventSource does it by itself) first gets the stored rows after
    /// epoch n, then the live ones, none twice; `retry` tells it to come back after 2 s.
    @Sendable func eventStream(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        let resumeAfter = (request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["last_event_id"].map(String.init))
            .flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        // Subscribed before reading the state, so nothing falls in between.
        let (stream, endStream) = events.subscription(jobId: job.id)
        let jobs = self.jobs
        let body = ResponseBody { writer in
            func send(_ event: String, _ data: JSONValue, id: Int? = nil) async throws {
                let idLine = id.map { "id: \($0)\n" } ?? ""
                try await writer.write(ByteBuffer(string: "event: \(event)\n\(idLine)data: \(data.encodedString())\n\n"))
            }
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            let current = (try? jobs.job(id: job.id)) ?? job
            try await send("status", ["id": JSONValue(current.id), "status": JSONValue(current.status.rawValue),
                                      "epoch": JSONValue(current.epoch), "epochs": JSONValue(current.epochs)])
            // The rows a reconnecting client missed, from the store.
            var lastSent = resumeAfter ?? Int.max
            if let resumeAfter {
                for row in (try? jobs.metrics(jobId: job.id)) ?? [] where row.epoch > resumeAfter {
                    var replayed = row.json
                    if case .object(var fields) = replayed { fields["epochs"] = JSONValue(current.epochs); replayed = .object(fields) }
                    try await send("epoch", replayed, id: row.epoch)
                    lastSent = row.epoch
                }
                if lastSent == Int.max { lastSent = resumeAfter }
            }
            if current.status.isFinished {
                try await send("done", current.json(includeSpec: false))
                try await writer.finish(nil)
                return
            }
            // A server shutting down ends the stream (the client comes back with Last-Event-ID);
            // otherwise graceful shutdown would wait for the job to finish.
            try await withGracefulShutdownHandler {
                for await event in stream {
                    switch event {
                    case .status(_, let status):
                        try await send("status", ["id": JSONValue(job.id), "status": JSONValue(status.rawValue)])
                    case .epoch(_, let metrics, let epochs):
                        // Already replayed from the store (it arrived while the replay ran).
                        if lastSent != Int.max, metrics.epoch <= lastSent { continue }
                        var row = metrics.rowJSON
                        if case .object(var fields) = row { fields["epochs"] = JSONValue(epochs); row = .object(fields) }
                        try await send("epoch", row, id: metrics.epoch)
                    case .log(_, let message):
                        try await send("log", ["message": JSONValue(message)])
                    case .done(_, let status):
                        let final = (try? jobs.job(id: job.id)).map { $0.json(includeSpec: false) } ?? ["status": JSONValue(status.rawValue)]
                        try await send("done", final)
                    }
                }
            } onGracefulShutdown: {
                endStream()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    // MARK: Changing

    @Sendable func cancel(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        guard !job.status.isFinished else { throw APIError.conflict("job \(job.id) is already \(job.status.rawValue)") }
        guard let after = try jobs.requestCancel(id: job.id, tenant: job.tenant) else { throw APIError.notFound("job", job.id) }
        if after.status == .cancelled {
            events.publish(.done(jobId: job.id, status: .cancelled))
        } else {
            pool.cancel(jobId: job.id)
        }
        return jsonResponse(after.json(includeSpec: false), status: .accepted)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        guard job.status.isFinished else { throw APIError.conflict("job \(job.id) is \(job.status.rawValue); cancel it first") }
        _ = try folder.withRoomToDelete { try jobs.deleteJob(id: job.id, tenant: job.tenant) }
        folder.removeFiles(ofJob: job.id)
        folder.restoreReserve()
        models.forget(job.id)
        ganModels.forget(job.id)
        return Response(status: .noContent)
    }

    // MARK: Models

    /// The stage names of a compressed job's report, in pipeline order; empty without a pipeline.
    private func stageNames(of job: JobRecord) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: folder.reportFile(jobId: job.id).path),
              case .object(let report) = try JSONValue.parse(data), case .array(let stages)? = report["stages"]
        else { return [] }
        return stages.compactMap { if case .object(let stage) = $0, case .string(let name)? = stage["name"] { name } else { nil } }
    }

    /// `GET /v1/jobs/{id}/deliveries`: every attempt to deliver the job's `notify` webhook, oldest first.
    @Sendable func webhookDeliveries(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        let rows: [JSONValue] = try deliveries.deliveries(jobId: job.id).map { delivery in
            ["event": JSONValue(delivery.event), "url": JSONValue(delivery.url), "attempt": JSONValue(delivery.attempt),
             "status_code": delivery.statusCode.map { JSONValue($0) } ?? .null, "error": delivery.error.map { JSONValue($0) } ?? .null,
             "delivered": .bool(delivery.delivered), "duration_ms": JSONValue(delivery.durationMs),
             "attempted_at": JSONValue(delivery.attemptedAt.rfc3339)]
        }
        return jsonResponse(["deliveries": .array(rows)])
    }

    /// `GET /v1/jobs/{id}/report`: every stage of the compression pipeline measured, and the sensitivity table.
    @Sendable func report(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        guard job.status == .succeeded else {
            throw APIError.conflict("job \(job.id) is \(job.status.rawValue); its report is available once it has succeeded")
        }
        if let data = FileManager.default.contents(atPath: folder.reportFile(jobId: job.id).path) {
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        // A job that finished before reports were written: its trained model is the only stage, and what
        // the job's result measured stands for it.
        let result = job.result.flatMap { try? JSONValue.parse(Data($0.utf8)) }
        func field(_ key: String) -> JSONValue {
            if case .object(let fields)? = result { return fields[key] ?? .null }
            return .null
        }
        let stage: JSONValue = ["name": "trained", "parameters": field("parameters"), "nonzero": field("nonzero"), "bytes": field("model_bytes"),
                                "test_accuracy": field("test_accuracy"), "latency_ms_per_sample": field("latency_ms_per_sample")]
        return jsonResponse(["stages": [stage], "sensitivity": .null])
    }

    func requireModelFile(_ job: JobRecord) throws -> URL {
        guard job.status == .succeeded else {
            throw APIError.conflict("job \(job.id) is \(job.status.rawValue); its model is available once it has succeeded")
        }
        return folder.modelFile(jobId: job.id)
    }

    @Sendable func model(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        let query = request.uri.queryParameters
        let format = query["format"].map(String.init) ?? "safetensors"
        guard ModelFormat.names.contains(format) else {
            throw APIError.invalid([SpecIssue(path: "format", message: "must be one of \(ModelFormat.names.joined(separator: ", ")), got \(JSONValue(format).encodedString())")],
                                   message: "the query is invalid")
        }
        var file = try requireModelFile(job)
        var suffix = ""
        if let stage = query["stage"].map(String.init) {
            // A stage name becomes part of a file name: only the report's own names ever do.
            guard StageName.isWellFormed(stage) else {
                throw APIError.invalid([SpecIssue(path: "stage", message: "is not a stage name (lowercase letters, digits and _), got \(JSONValue(stage).encodedString())")],
                                       message: "the query is invalid")
            }
            let stages = try stageNames(of: job)
            if stages.isEmpty, stage != "trained" {
                throw APIError.invalid([SpecIssue(path: "stage", message: "this job has no compression pipeline; its only stage is \"trained\"")],
                                       message: "the query is invalid")
            }
            if !stages.isEmpty {
                guard stages.contains(stage) else {
                    throw APIError.invalid([SpecIssue(path: "stage", message: "must be one of \(stages.joined(separator: ", ")), got \"\(stage)\"")],
                                           message: "the query is invalid")
                }
                // The last stage is the job's model file itself.
                if stage != stages.last { file = folder.modelFile(jobId: job.id, stage: stage) }
                suffix = ".\(stage)"
            }
        }
        var data = try Data(contentsOf: file)
        if format == ModelFormat.onnx { data = try await onnxExport(of: data, job: job) }
        let fileName = "\(job.name.map(Self.safeFileName) ?? job.id)\(suffix).\(format)"
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .contentDisposition: "attachment; filename=\"\(fileName)\""],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private static func safeFileName(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(80))
    }

    @Sendable func predict(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        try refusePredictionOfGAN(job)
        let url = try requireModelFile(job)
        let json = try await request.decodeJSONBody(predictionBody)
        // Reading 28 000 rows out of the JSON, running the model and encoding its outputs are CPU work: all of it
        // off the cooperative threads, which answer everyone (/healthz included).
        return try await offCooperativePool { [models] in
            let rows = try Self.predictionRows(json)
            let prediction: TrainedModel.Prediction
            do {
                prediction = try models.model(jobId: job.id, url: url).predict(rows)
            } catch let error as TrainedModel.InputError {
                throw APIError.invalid([SpecIssue(path: error.path, message: error.message)], message: "the request is invalid")
            }
            return jsonResponse([
                "outputs": .array(prediction.outputs.map { .array($0.map { JSONValue($0) }) }),
                "predictions": .array(prediction.predictions),
            ])
        }
    }

    /// The `inputs` of a `/predict` body, each a list of numbers; a 422 naming each bad element.
    static func predictionRows(_ json: JSONValue) throws -> [[Double]] {
        let diagnostics = SpecDiagnostics()
        guard let body = ObjectReader(json, path: "", diagnostics: diagnostics, allowedKeys: ["inputs"]) else {
            throw APIError.invalid(diagnostics.issues, message: "the request is invalid")
        }
        var rows: [[Double]] = []
        if let items = body.array("inputs") {
            rows.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                guard case .array(let values) = item else {
                    diagnostics.report("inputs[\(index)]", "must be an array of numbers, got \(item.kindName)")
                    continue
                }
                var row: [Double] = []
                row.reserveCapacity(values.count)
                for (position, value) in values.enumerated() {
                    guard case .number(let number) = value else {
                        diagnostics.report("inputs[\(index)][\(position)]", "must be a number, got \(value.kindName)")
                        break
                    }
                    row.append(number)
                }
                rows.append(row)
            }
        } else if !body.has("inputs") {
            body.report("inputs", "is required: a list of samples, each a list of numbers")
        }
        guard diagnostics.isEmpty else { throw APIError.invalid(diagnostics.issues, message: "the request is invalid") }
        return rows
    }
}

/// Turns a submitted spec into the spec a job runs: parsed, pinned to the dataset a name means
/// now, checked against that data (features, classes, hold-out datasets). `/v1/jobs` checks one
/// spec with it, `/v1/studies` every combination of a study.
struct JobSpecChecker {
    let datasets: any DatasetRepository
    /// For `init.from_job`: the source job and its saved model.
    let jobs: any JobRepository
    let folder: DataFolder
    /// Whose datasets and jobs the spec may name: another tenant's read as unknown.
    let tenant: String
    let limits: JobLimits
    /// The newest uploaded dataset of each name, read once: every spec this checker passes pins
    /// a name to the same dataset, even if an upload lands in between.
    private var newestByName: [String: DatasetRecord]?

    init(datasets: any DatasetRepository, jobs: any JobRepository, folder: DataFolder, tenant: String, limits: JobLimits) {
        self.datasets = datasets
        self.jobs = jobs
        self.folder = folder
        self.tenant = tenant
        self.limits = limits
    }

    /// The tenant's dataset with this id; nil for another shape of id, another tenant's or an unknown one.
    private func dataset(id: String) throws -> DatasetRecord? {
        guard ResourceKind.dataset.isWellFormed(id) else { return nil }
        return try datasets.dataset(id: id, tenant: tenant)
    }

    /// The tenant's job with this id; nil for another shape of id, another tenant's or an unknown one.
    private func job(id: String) throws -> JobRecord? {
        guard ResourceKind.job.isWellFormed(id) else { return nil }
        return try jobs.job(id: id, tenant: tenant)
    }

    /// Throws `SpecProblems` listing every problem of the spec; other errors are the store's.
    mutating func check(_ json: JSONValue) throws -> JobSpec {
        var spec = try JobSpec.parse(json)
        let datasetPath = if case .named = spec.dataset { "dataset.name" } else { "dataset.id" }
        if case .named(let name) = spec.dataset {
            if newestByName == nil {
                newestByName = Dictionary(try datasets.listDatasets(tenant: tenant).map { ($0.name, $0) }, uniquingKeysWith: { newer, _ in newer })
            }
            // Pin the job to the dataset the name means now, so a later upload cannot change it.
            guard let record = newestByName?[name] else {
                throw SpecProblems(issues: [SpecIssue(path: "dataset.name", message: "no dataset named \"\(name)\"; upload one with POST /v1/datasets?name=\(name)")])
            }
            spec.dataset = .uploaded(id: record.id)
        }
        let summary: DatasetSummary
        switch spec.dataset {
        case .named: preconditionFailure("resolved above")
        case .uploaded(let id):
            guard let record = try dataset(id: id) else {
                throw SpecProblems(issues: [SpecIssue(path: "dataset.id", message: "no dataset with id \(id); upload one with POST /v1/datasets")])
            }
            // IDX or NPY data whose labels are still to be uploaded.
            if record.isUnlabeled { throw SpecProblems(issues: [SpecIssue(path: datasetPath, message: record.missingLabelsMessage)]) }
            summary = DatasetSummary(record)
        case .builtin(let kind, let options):
            summary = DatasetSummary(rows: options.samples, sampleShape: kind.sampleShape, task: .classification,
                                     classCount: kind.fixedClassCount ?? options.classes, targetCount: kind.fixedClassCount ?? options.classes)
        }
        var issues: [SpecIssue] = []
        for (path, holdOut) in [("validation.dataset", spec.validation), ("test.dataset", spec.test)] {
            guard case .dataset(let id) = holdOut else { continue }
            guard let record = try dataset(id: id) else {
                issues.append(SpecIssue(path: path, message: "no dataset with id \(id)"))
                continue
            }
            if record.isUnlabeled {
                issues.append(SpecIssue(path: path, message: record.missingLabelsMessage))
                continue
            }
            if record.shape != summary.sampleShape || record.task != summary.task.rawValue || record.classes?.count != summary.classCount {
                issues.append(SpecIssue(path: path, message: "dataset \(id) does not have the training data's features and targets"))
            }
        }
        guard issues.isEmpty else { throw SpecProblems(issues: issues) }
        let resolved: JobSpec
        do {
            resolved = try spec.resolved(for: summary)
        } catch {
            throw error.namingSampleShape(summary.sampleShape)
        }
        let limitProblems = limits.problems(of: resolved, rows: summary.rows)
        guard limitProblems.isEmpty else { throw SpecProblems(issues: limitProblems) }
        if let initialization = resolved.initialization { try checkTransfer(initialization, into: resolved) }
        if let distillation = resolved.distillation { try checkTeacher(distillation, for: resolved) }
        return resolved
    }

    /// `init.from_job` must name a succeeded supervised job whose layers line up with this model's.
    private func checkTransfer(_ initialization: InitSpec, into spec: JobSpec) throws {
        func refuse(_ message: String, path: String = "init.from_job") -> SpecProblems {
            SpecProblems(issues: [SpecIssue(path: path, message: message)])
        }
        guard let source = try job(id: initialization.fromJob) else { throw refuse("no job with id \(initialization.fromJob)") }
        guard source.status == .succeeded else {
            throw refuse("job \(source.id) is \(source.status.rawValue); only a succeeded job's weights can be a starting point")
        }
        guard let data = FileManager.default.contents(atPath: folder.modelFile(jobId: source.id).path),
              let model = try? TrainedModel.load(data)
        else { throw refuse("job \(source.id) has no supervised model to start from") }
        if let mismatch = WeightTransfer.mismatch(source: model.network.spec, target: spec.model) {
            throw SpecProblems(issues: [mismatch])
        }
    }
}

extension JobSpecChecker {
    /// `distillation.teacher_job` must name a succeeded classification job whose model takes the same
    /// inputs and answers the same classes.
    private func checkTeacher(_ distillation: DistillationSpec, for spec: JobSpec) throws {
        func refuse(_ message: String) -> SpecProblems {
            SpecProblems(issues: [SpecIssue(path: "distillation.teacher_job", message: message)])
        }
        guard let teacher = try job(id: distillation.teacherJob) else { throw refuse("no job with id \(distillation.teacherJob)") }
        guard teacher.status == .succeeded else {
            throw refuse("job \(teacher.id) is \(teacher.status.rawValue); only a succeeded job's model can teach")
        }
        guard let data = FileManager.default.contents(atPath: folder.modelFile(jobId: teacher.id).path),
              let model = try? TrainedModel.load(data)
        else { throw refuse("job \(teacher.id) has no supervised model to learn from") }
        if let problem = Distillation.mismatch(teacher: model, studentInputShape: spec.model.inputShape ?? [], studentOutputs: spec.model.outputCount) {
            throw refuse("job \(teacher.id)'s model \(problem)")
        }
    }
}

extension SpecProblems {
    /// A model input that does not fit the data is reported with both shapes: the model's (in
    /// the message) and the dataset's samples' (added here).
    func namingSampleShape(_ sampleShape: [Int]) -> SpecProblems {
        SpecProblems(issues: issues.map { issue in
            guard issue.path == "model.input_shape", !issue.message.contains("\(sampleShape)") else { return issue }
            return SpecIssue(path: issue.path, message: "\(issue.message) (the dataset's samples have shape \(sampleShape))")
        })
    }
}

/// Trained models loaded for prediction, kept so repeated calls don't re-read the file.
final class ModelCache: Sendable {
    private let models = Mutex<[String: TrainedModel]>([:])
    private let capacity = 16

    func model(jobId: String, url: URL) throws -> TrainedModel {
        if let cached = models.withLock({ $0[jobId] }) { return cached }
        let model = try TrainedModel.load(try Data(contentsOf: url))
        models.withLock { cache in
            if cache.count >= capacity, let victim = cache.keys.first { cache.removeValue(forKey: victim) }
            cache[jobId] = model
        }
        return model
    }

    func forget(_ jobId: String) { models.withLock { _ = $0.removeValue(forKey: jobId) } }
}

extension JobRecord {
    var links: JSONValue {
        ["self": JSONValue("/v1/jobs/\(id)"), "metrics": JSONValue("/v1/jobs/\(id)/metrics"), "events": JSONValue("/v1/jobs/\(id)/events"),
         "cancel": JSONValue("/v1/jobs/\(id)/cancel"), "model": JSONValue("/v1/jobs/\(id)/model"), "predict": JSONValue("/v1/jobs/\(id)/predict"),
         "report": JSONValue("/v1/jobs/\(id)/report"), "deliveries": JSONValue("/v1/jobs/\(id)/deliveries")]
    }

    /// `GET /v1/jobs/{id}` (the list leaves out the spec).
    func json(includeSpec: Bool) -> JSONValue {
        func parsed(_ text: String?) -> JSONValue {
            guard let text, let value = try? JSONValue.parse(Data(text.utf8)) else { return .null }
            return value
        }
        var fields: [String: JSONValue] = [
            "id": JSONValue(id), "name": JSONValue(name), "status": JSONValue(status.rawValue), "progress": JSONValue(progress),
            "epoch": JSONValue(epoch), "epochs": JSONValue(epochs), "attempt": JSONValue(attempt), "priority": JSONValue(priority),
            "dataset_id": JSONValue(datasetId),
            "created_at": JSONValue(createdAt.rfc3339), "started_at": JSONValue(startedAt?.rfc3339),
            "finished_at": JSONValue(finishedAt?.rfc3339), "latest": parsed(latest), "best_epoch": bestEpoch.map { JSONValue($0) } ?? .null,
            "stopped_early": .bool(stoppedEarly),
            "error": errorCode.map { ["code": JSONValue($0), "message": JSONValue(errorMessage)] } ?? .null,
            "result": parsed(result), "links": links, "study_id": JSONValue(studyId),
        ]
        if includeSpec { fields["spec"] = parsed(spec) }
        return .object(fields)
    }
}

extension MetricsRow {
    var json: JSONValue {
        ["epoch": JSONValue(epoch), "train_loss": JSONValue(trainLoss), "train_accuracy": trainAccuracy.map { JSONValue($0) } ?? .null,
         "val_loss": valLoss.map { JSONValue($0) } ?? .null, "val_accuracy": valAccuracy.map { JSONValue($0) } ?? .null,
         "lr": JSONValue(lr), "grad_norm": JSONValue(gradNorm), "penalty": JSONValue(penalty), "sparsity": JSONValue(sparsity),
         "seconds": JSONValue(seconds), "samples_per_second": JSONValue(samplesPerSecond)]
            .adding(["d_loss": dLoss, "g_loss": gLoss, "d_real": dReal, "d_fake": dFake, "val_macro_f1": valMacroF1])
            .addingRecall(valClassRecall)
    }
}

extension JSONValue {
    /// `val_class_recall` from its stored JSON text, when there is one.
    func addingRecall(_ text: String?) -> JSONValue {
        guard case .object(var fields) = self, let text, let recall = try? JSONValue.parse(Data(text.utf8)) else { return self }
        fields["val_class_recall"] = recall
        return .object(fields)
    }
}

/// Compression stage names (`trained`, `fine_tuned`, `pruned_2`…) as `?stage=` may give them: lowercase
/// letters, digits and `_`. Checked before the name is compared with a report's or joined into a file name.
enum StageName {
    static func isWellFormed(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
    }
}
