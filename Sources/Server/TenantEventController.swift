import Foundation
import HTTPTypes
import Hummingbird
import JobStore
import NeuralNetwork
import ServiceLifecycle
import Workers

/// `GET /v1/events`: one Server-Sent Events stream of every job of the caller's tenant, so that a
/// jobs table stays live over one connection instead of one per job or a polling loop.
///
/// Events: `status` `{"id","status"}` (a submitted job arrives as `queued`), `epoch`
/// `{"id","epoch","epochs","progress","latest"}` (`latest` is the metrics row, as in the job's JSON)
/// and `done` (the finished job as `GET /v1/jobs/{id}` shows it). Log lines stay on the job's own
/// stream. Nothing is replayed: a client that (re)connects lists `/v1/jobs` once the stream is open.
struct TenantEventController {
    let jobs: any JobRepository
    let events: JobEventHub

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get(use: stream)
    }

    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        let tenant = try context.tenant()
        let (stream, endStream) = events.subscription(jobId: nil)
        let jobs = self.jobs
        let body = ResponseBody { writer in
            func send(_ event: String, _ data: JSONValue) async throws {
                try await writer.write(ByteBuffer(string: "event: \(event)\ndata: \(data.encodedString())\n\n"))
            }
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            // Whether a job is this tenant's, looked up once per job (events carry only its id).
            var isTenants: [String: Bool] = [:]
            func belongs(_ jobId: String) -> Bool {
                if let known = isTenants[jobId] { return known }
                let known = (try? jobs.job(id: jobId, tenant: tenant)) != nil
                isTenants[jobId] = known
                return known
            }
            // A server shutting down ends the stream; the client comes back after `retry`.
            try await withGracefulShutdownHandler {
                for await event in stream where belongs(event.jobId) {
                    switch event {
                    case .status(let id, let status):
                        try await send("status", ["id": JSONValue(id), "status": JSONValue(status.rawValue)])
                    case .epoch(let id, let metrics, let epochs):
                        let progress = epochs > 0 ? min(1, Double(metrics.epoch) / Double(epochs)) : 0
                        try await send("epoch", ["id": JSONValue(id), "epoch": JSONValue(metrics.epoch), "epochs": JSONValue(epochs),
                                                 "progress": JSONValue(progress), "latest": metrics.rowJSON])
                    case .log:
                        continue
                    case .done(let id, let status):
                        let final = (try? jobs.job(id: id, tenant: tenant)).map { $0.json(includeSpec: false) }
                            ?? ["id": JSONValue(id), "status": JSONValue(status.rawValue)]
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
}
