import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JobStore
import Logging
import NeuralNetwork
import Training

/// Delivers the spec's `notify` webhooks: when a job ends in one of its `events`, POSTs a JSON
/// event to its `url` with URLSession (libcurl underneath), retrying with backoff on a network
/// error, a 5xx, a 408 or a 429, and logs every attempt in the store.
///
/// It listens to the event hub, so every way a job ends (a worker finishing it, a queued job
/// cancelled over HTTP) notifies alike. Deliveries run in their own tasks: neither a worker
/// thread nor the event loop ever waits for a receiver.
public final class WebhookNotifier: Sendable {
    private let jobs: any JobRepository
    private let deliveries: any WebhookDeliveryRepository
    private let session: URLSession
    private let retryDelays: [Duration]
    private let timeout: TimeInterval
    private let logger: Logger

    /// - `retryDelays`: the wait before each retry; their count is the number of retries.
    public init(jobs: any JobRepository, deliveries: any WebhookDeliveryRepository, logger: Logger,
                retryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30), .seconds(120)], timeout: TimeInterval = 10) {
        self.jobs = jobs
        self.deliveries = deliveries
        self.retryDelays = retryDelays
        self.timeout = timeout
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.httpMaximumConnectionsPerHost = 4
        session = URLSession(configuration: configuration)
    }

    /// Starts delivering for the jobs whose end `hub` announces.
    public func attach(to hub: JobEventHub) {
        hub.observe { [self] event in
            guard case .done(let jobId, let status) = event else { return }
            Task.detached { await self.notify(jobId: jobId, status: status) }
        }
    }

    /// Delivers the webhook of `jobId` for `status`, if its spec asks for it; returns once the
    /// receiver accepted it or the retries are spent.
    public func notify(jobId: String, status: JobStatus) async {
        guard let job = try? jobs.job(id: jobId), let notify = NotifySpec.of(specJSON: job.spec),
              notify.events.contains(status.rawValue)
        else { return }
        let body = Self.payload(job, event: status.rawValue)
        for attempt in 1...(retryDelays.count + 1) {
            let outcome = await post(body, to: notify.url, event: status.rawValue, jobId: jobId, attempt: attempt)
            do { try deliveries.recordDelivery(outcome.record) } catch {
                logger.error("could not log the webhook delivery of \(jobId): \(error)")
            }
            if outcome.record.delivered || !outcome.isWorthRetrying || attempt > retryDelays.count { return }
            try? await Task.sleep(for: retryDelays[attempt - 1])
        }
    }

    private func post(_ body: Data, to url: URL, event: String, jobId: String,
                      attempt: Int) async -> (record: WebhookDelivery, isWorthRetrying: Bool) {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("descent-webhook/1", forHTTPHeaderField: "User-Agent")
        // A connection per delivery: deliveries are rare, and a pooled connection the receiver closed
        // in between would fail the POST for nothing.
        request.setValue("close", forHTTPHeaderField: "Connection")
        request.setValue(event, forHTTPHeaderField: "X-Descent-Event")
        request.setValue("\(jobId)/\(event)/\(attempt)", forHTTPHeaderField: "X-Descent-Delivery")
        let started = Date()
        var statusCode: Int?
        var failure: String?
        do {
            let (_, response) = try await session.data(for: request)
            statusCode = (response as? HTTPURLResponse)?.statusCode
        } catch {
            failure = error.localizedDescription
        }
        let delivered = statusCode.map { (200..<300).contains($0) } ?? false
        if !delivered, failure == nil { failure = "the receiver answered HTTP \(statusCode ?? 0)" }
        let retry = statusCode.map { $0 >= 500 || $0 == 408 || $0 == 429 } ?? true
        if !delivered {
            logger.warning("webhook of \(jobId) to \(url.absoluteString) failed (attempt \(attempt)): \(failure ?? "")")
        }
        let record = WebhookDelivery(jobId: jobId, event: event, url: url.absoluteString, attempt: attempt, statusCode: statusCode,
                                     error: delivered ? nil : failure, delivered: delivered,
                                     durationMs: Date().timeIntervalSince(started) * 1000, attemptedAt: started)
        return (record, retry)
    }

    /// `{"event", "job": {"id", "name", "status", "error", "result", "finished_at", "links"}}`.
    static func payload(_ job: JobRecord, event: String) -> Data {
        func parsed(_ text: String?) -> JSONValue { text.flatMap { try? JSONValue.parse(Data($0.utf8)) } ?? .null }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let body: JSONValue = [
            "event": JSONValue(event),
            "job": [
                "id": JSONValue(job.id), "name": job.name.map { JSONValue($0) } ?? .null, "status": JSONValue(job.status.rawValue),
                "error": job.errorCode.map { ["code": JSONValue($0), "message": job.errorMessage.map { JSONValue($0) } ?? .null] } ?? .null,
                "result": parsed(job.result), "finished_at": job.finishedAt.map { JSONValue(formatter.string(from: $0)) } ?? .null,
                "links": ["self": JSONValue("/v1/jobs/\(job.id)"), "model": JSONValue("/v1/jobs/\(job.id)/model"),
                          "report": JSONValue("/v1/jobs/\(job.id)/report")],
            ],
        ]
        return Data(body.encodedString().utf8)
    }
}
