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
/// A tenant chooses the URL, so the server must not become its way into the server's own network:
/// redirects are not followed, and a URL whose host resolves to a loopback, private, link-local,
/// shared or multicast address is refused (`allowsPrivateTargets`, `--webhook-allow-private`, lifts that).
///
/// Each POST is signed when the job's tenant has a secret (`descent webhook-secret rotate`):
/// `X-Descent-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">` (`WebhookSecret`).
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
    private let allowsPrivateTargets: Bool
    private let logger: Logger

    /// - `retryDelays`: the wait before each retry; their count is the number of retries.
    public init(jobs: any JobRepository, deliveries: any WebhookDeliveryRepository, logger: Logger,
                retryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30), .seconds(120)], timeout: TimeInterval = 10,
                allowsPrivateTargets: Bool = false) {
        self.allowsPrivateTargets = allowsPrivateTargets
        self.jobs = jobs
        self.deliveries = deliveries
        self.retryDelays = retryDelays
        self.timeout = timeout
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.httpMaximumConnectionsPerHost = 4
        session = URLSession(configuration: configuration, delegate: RefusingRedirects(), delegateQueue: nil)
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
            let outcome = await post(body, to: notify.url, event: status.rawValue, jobId: jobId, tenant: job.tenant, attempt: attempt)
            do { try deliveries.recordDelivery(outcome.record) } catch {
                logger.error("could not log the webhook delivery of \(jobId): \(error)")
            }
            if outcome.record.delivered || !outcome.isWorthRetrying || attempt > retryDelays.count { return }
            try? await Task.sleep(for: retryDelays[attempt - 1])
        }
    }

    private func post(_ body: Data, to url: URL, event: String, jobId: String, tenant: String,
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
        var retry = true
        let secrets: [String]?
        do { secrets = try deliveries.webhookSecrets(tenant: tenant, now: started) } catch {
            // Unsigned would be refused by a receiver that checks: wait for the store instead.
            secrets = nil
            failure = "the tenant's webhook secret could not be read: \(error)"
        }
        if let secrets, !secrets.isEmpty {
            // Signed per attempt: the timestamp says when this POST was sent, not when the job ended.
            request.setValue(WebhookSecret.signature(of: body, timestamp: Int(started.timeIntervalSince1970), secrets: secrets),
                             forHTTPHeaderField: "X-Descent-Signature")
        }
        if secrets == nil {
            retry = true
        } else if !allowsPrivateTargets, let refusal = WebhookTarget.refusal(of: url) {
            failure = refusal
            retry = false  // the address will not change by waiting
        } else {
            do {
                let (_, response) = try await session.data(for: request)
                statusCode = (response as? HTTPURLResponse)?.statusCode
            } catch {
                failure = error.localizedDescription
            }
            if let statusCode { retry = statusCode >= 500 || statusCode == 408 || statusCode == 429 }
        }
        let delivered = statusCode.map { (200..<300).contains($0) } ?? false
        if !delivered, failure == nil {
            let code = statusCode ?? 0
            failure = (300..<400).contains(code) ? "the receiver answered HTTP \(code), a redirect, which is not followed" : "the receiver answered HTTP \(code)"
        }
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

/// Answers every redirect with "no": a receiver may not send the server on to another address.
private final class RefusingRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}

/// Which webhook targets the server refuses to reach.
public enum WebhookTarget {
    /// Why the server will not POST to `url`, or nil: its host resolves only to public addresses.
    /// (The resolver is asked again when connecting; a name that changes its answer in between is the
    /// residual risk of any resolve-then-connect check.)
    public static func refusal(of url: URL) -> String? {
        guard let host = url.host?.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), !host.isEmpty else {
            return "the URL has no host"
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &results) == 0, let first = results else {
            return "the host \(host) does not resolve"
        }
        defer { freeaddrinfo(first) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let address = current.pointee.ai_addr, let reason = privateAddress(address) {
                return "refused: \(host) resolves to \(reason); webhooks go to public addresses only (the operator's --webhook-allow-private lifts this)"
            }
            entry = current.pointee.ai_next
        }
        return nil
    }

    /// A description of `address` when it is not a public unicast address.
    static func privateAddress(_ address: UnsafeMutablePointer<sockaddr>) -> String? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            let raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            return privateIPv4(raw)
        case AF_INET6:
            let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
            }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) { return bytes[15] <= 1 ? "the loopback or unspecified address ::\(bytes[15])" : nil }
            // ::ffff:a.b.c.d carries an IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return privateIPv4(bytes[12...15].reduce(0) { $0 << 8 | UInt32($1) })
            }
            if bytes[0] & 0xfe == 0xfc { return "a unique local IPv6 address (fc00::/7)" }
            if bytes[0] == 0xfe, bytes[1] & 0xc0 == 0x80 { return "a link-local IPv6 address (fe80::/10)" }
            if bytes[0] == 0xff { return "a multicast IPv6 address" }
            return nil
        default:
            return "an address of an unknown family"
        }
    }

    /// RFC 1918, loopback, link-local (cloud metadata at 169.254.169.254), shared (100.64/10),
    /// "this network", multicast and reserved ranges.
    static func privateIPv4(_ address: UInt32) -> String? {
        let ranges: [(UInt32, Int, String)] = [
            (0x0000_0000, 8, "0.0.0.0/8"), (0x0A00_0000, 8, "a private address (10.0.0.0/8)"),
            (0x6440_0000, 10, "a shared address (100.64.0.0/10)"), (0x7F00_0000, 8, "a loopback address (127.0.0.0/8)"),
            (0xA9FE_0000, 16, "a link-local address (169.254.0.0/16)"), (0xAC10_0000, 12, "a private address (172.16.0.0/12)"),
            (0xC0A8_0000, 16, "a private address (192.168.0.0/16)"), (0xE000_0000, 4, "a multicast address (224.0.0.0/4)"),
            (0xF000_0000, 4, "a reserved address (240.0.0.0/4)"),
        ]
        for (base, bits, name) in ranges where address >> (32 - UInt32(bits)) == base >> (32 - UInt32(bits)) { return name }
        return nil
    }
}
