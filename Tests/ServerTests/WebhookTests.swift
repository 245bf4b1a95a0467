import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import NeuralNetwork
import NIOCore
import Synchronization
import Testing

/// A webhook receiver on loopback: answers each POST with the next status of `statuses` (200 once
/// they run out) and keeps what it was sent.
private final class Receiver: Sendable {
    struct Delivery: Sendable {
        var body: [String: Any] { (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:] }
        let data: Data
        let event: String?
        let deliveryId: String?
        let signature: String?
    }
    private let statuses: Mutex<[HTTPResponse.Status]>
    private let received = Mutex<[Delivery]>([])

    init(statuses: [HTTPResponse.Status]) { self.statuses = Mutex(statuses) }

    var deliveries: [Delivery] { received.withLock { $0 } }

    /// Runs the receiver while `body` runs, with its URL.
    func run(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.post("hook") { request, context -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let delivery = Delivery(data: Data(buffer: buffer), event: request.headers[HTTPField.Name("X-Descent-Event")!],
                                    deliveryId: request.headers[HTTPField.Name("X-Descent-Delivery")!],
                                    signature: request.headers[HTTPField.Name("X-Descent-Signature")!])
            self.received.withLock { $0.append(delivery) }
            let status = self.statuses.withLock { $0.isEmpty ? .ok : $0.removeFirst() }
            return Response(status: status)
        }
        // HummingbirdTesting's live mode serves it on a free loopback port for the duration of `body`.
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await body("http://127.0.0.1:\(port)/hook")
        }
    }

    /// Waits for `count` deliveries; generous, as the whole suite shares two cores.
    func waitFor(_ count: Int, timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while deliveries.count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    }
}

@Suite("Webhooks")
struct WebhookTests {
    static func spec(_ url: String, events: String = #"["succeeded", "failed", "cancelled"]"#) -> JSONValue {
        try! JSONValue("""
            {"name": "hooked", "dataset": {"builtin": "moons", "samples": 200},
             "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]},
             "training": {"epochs": 2}, "notify": {"url": "\(url)", "events": \(events)}}
            """)
    }

    @Test("a succeeded job POSTs its event to the receiver, retried with backoff through two 503s")
    func succeededJobIsDeliveredWithRetries() async throws {
        let receiver = Receiver(statuses: [.serviceUnavailable, .serviceUnavailable])
        try await receiver.run { url in
            try await withServer(ServerOptions(runsWorkers: true)) { api in
                let id = try await api.submit(Self.spec(url))
                #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
                try await receiver.waitFor(3)
                let deliveries = receiver.deliveries
                #expect(deliveries.count == 3, "two 503s, then the 200")
                #expect(deliveries.map(\.deliveryId) == ["\(id)/succeeded/1", "\(id)/succeeded/2", "\(id)/succeeded/3"])
                let body = try #require(deliveries.last?.body)
                #expect(body["event"] as? String == "succeeded")
                let job = try #require(body["job"] as? [String: Any])
                #expect(job["id"] as? String == id && job["status"] as? String == "succeeded" && job["name"] as? String == "hooked")
                #expect((job["result"] as? [String: Any])?["parameters"] != nil)
                #expect(deliveries.last?.event == "succeeded")
                // The delivery log: two refusals, then the delivery.
                var log: [JSONValue] = []
                for _ in 0..<1500 {
                    log = try await api.get("/v1/jobs/\(id)/deliveries").json()["deliveries"]?.array ?? []
                    if log.count == 3 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(log.map { $0["attempt"]?.int } == [1, 2, 3])
                #expect(log.map { $0["status_code"]?.int } == [503, 503, 200])
                #expect(log.map { $0["delivered"] } == [false, false, true])
                #expect(log.first?["error"]?.string?.contains("503") == true)
                #expect(log.allSatisfy { $0["url"] == .string(url) && $0["event"] == "succeeded" })
                // The spec keeps the webhook as given, defaults filled in.
                #expect(try await api.job(id)["spec"]?["notify"] == ["url": .string(url), "events": ["succeeded", "failed", "cancelled"]])
            }
        }
    }

    @Test("a queued job cancelled over HTTP notifies too; events not listed do not; a 4xx is not retried")
    func cancelledJobAndFilteredEvents() async throws {
        let receiver = Receiver(statuses: [.badRequest])
        try await receiver.run { url in
            try await withServer(ServerOptions(runsWorkers: false)) { api in
                let quiet = try await api.submit(Self.spec(url, events: #"["succeeded"]"#))
                let loud = try await api.submit(Self.spec(url, events: #"["cancelled"]"#))
                for id in [quiet, loud] { #expect(try await api.post("/v1/jobs/\(id)/cancel").status == .accepted) }
                try await receiver.waitFor(1)
                try await Task.sleep(for: .milliseconds(400))  // time for a retry that must not come
                let deliveries = receiver.deliveries
                #expect(deliveries.count == 1, "\(deliveries.map(\.deliveryId))")
                #expect(deliveries.first?.deliveryId == "\(loud)/cancelled/1")
            }
        }
    }

    @Test("the signature is HMAC-SHA256 of \"<t>.<body>\" in hex, one v1 per secret in force (vectors from Python's hmac)")
    func signatureMatchesPythonsHMAC() {
        let signature = WebhookSecret.signature(of: Data(#"{"a":1}"#.utf8), timestamp: 1_700_000_000, secrets: ["whsec_test", "whsec_old"])
        #expect(signature == "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
                + ",v1=b9d801502bb535e960ee9aeee7a294b082bda5089d79c7db610b85116ce6faa6")
    }

    @Test("deliveries go unsigned until the tenant has a secret, then carry X-Descent-Signature over timestamp and body; after a rotation both secrets sign")
    func deliveriesAreSignedWithTheTenantsSecret() async throws {
        let receiver = Receiver(statuses: [])
        try await receiver.run { url in
            try await withServer(ServerOptions(runsWorkers: true, fileDatabase: true)) { api in
                let database = try AppDatabase.open(path: api.folder.appendingPathComponent("descent.sqlite").path)
                let unsigned = try await api.submit(Self.spec(url))
                #expect(try await api.waitUntilFinished(unsigned)["status"] == "succeeded")
                try await receiver.waitFor(1)
                #expect(receiver.deliveries.first?.signature == nil)

                let first = try database.rotateWebhookSecret(tenant: Tenant.default, keepingPrevious: 3600, now: Date())
                let signed = try await api.submit(Self.spec(url))
                #expect(try await api.waitUntilFinished(signed)["status"] == "succeeded")
                try await receiver.waitFor(2)
                let second = try database.rotateWebhookSecret(tenant: Tenant.default, keepingPrevious: 3600, now: Date())
                let rotated = try await api.submit(Self.spec(url))
                #expect(try await api.waitUntilFinished(rotated)["status"] == "succeeded")
                try await receiver.waitFor(3)

                let deliveries = receiver.deliveries
                #expect(deliveries.map(\.deliveryId) == ["\(unsigned)/succeeded/1", "\(signed)/succeeded/1", "\(rotated)/succeeded/1"])
                for (delivery, secrets) in zip(deliveries.dropFirst(), [[first], [second, first]]) {
                    let header = try #require(delivery.signature)
                    let fields = header.split(separator: ",")
                    let timestamp = try #require(fields.first.flatMap { $0.hasPrefix("t=") ? Int($0.dropFirst(2)) : nil }, "\(header)")
                    #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 600, "the timestamp is the time of sending")
                    #expect(fields.count == 1 + secrets.count, "\(header)")
                    #expect(header == WebhookSecret.signature(of: delivery.data, timestamp: timestamp, secrets: secrets),
                            "signed over exactly the bytes received")
                }
            }
        }
    }

    @Test("an unreachable receiver costs the job nothing: it succeeds, and the server keeps serving")
    func unreachableReceiverDoesNotBlock() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let id = try await api.submit(Self.spec("http://127.0.0.1:9/hook"))
            #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
            #expect(try await api.get("/healthz").status == .ok)
        }
    }
}

@Suite("Webhooks go where a tenant may send them")
struct WebhookTargetTests {
    /// The deliveries of `id` once `count` are logged.
    static func deliveries(of id: String, count: Int, api: APIClient) async throws -> [JSONValue] {
        var log: [JSONValue] = []
        for _ in 0..<1500 {
            log = try await api.get("/v1/jobs/\(id)/deliveries").json()["deliveries"]?.array ?? []
            if log.count >= count { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        return log
    }

    @Test("Without --webhook-allow-private, a receiver on loopback, a private network or the cloud metadata address is refused once, not retried")
    func privateTargetsAreRefused() async throws {
        let receiver = Receiver(statuses: [])
        try await receiver.run { url in
            try await withServer(ServerOptions(runsWorkers: true, webhookAllowsPrivateTargets: false)) { api in
                for target in [url, "http://localhost:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
                               "http://[::1]:9/hook", "http://[::ffff:192.168.1.1]/hook"] {
                    let id = try await api.submit(WebhookTests.spec(target))
                    #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
                    let log = try await Self.deliveries(of: id, count: 1, api: api)
                    try await Task.sleep(for: .milliseconds(300))  // longer than the retry delays: none may follow
                    let after = try await api.get("/v1/jobs/\(id)/deliveries").json()["deliveries"]?.array ?? []
                    #expect(after.count == 1, "\(target): \(after)")
                    #expect(log.first?["delivered"] == false, "\(target)")
                    #expect(log.first?["error"]?.string?.contains("refused") == true, "\(target): \(log)")
                }
                #expect(receiver.deliveries.isEmpty, "the loopback receiver was reached")
            }
        }
    }

    @Test("A receiver's redirect is not followed, and a URL with credentials is a 422")
    func redirectsAndCredentials() async throws {
        let target = Receiver(statuses: [])
        try await target.run { targetURL in
            let router = Router()
            router.post("hook") { _, _ -> Response in
                Response(status: .found, headers: [.location: targetURL])
            }
            let redirecting = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await redirecting.test(.live) { client in
                let port = try #require(client.port)
                try await withServer(ServerOptions(runsWorkers: true)) { api in
                    let id = try await api.submit(WebhookTests.spec("http://127.0.0.1:\(port)/hook"))
                    #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
                    let log = try await Self.deliveries(of: id, count: 1, api: api)
                    #expect(log.first?["status_code"]?.int == 302, "\(log)")
                    #expect(log.first?["error"]?.string?.contains("redirect") == true, "\(log)")
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(target.deliveries.isEmpty, "the redirect was followed")

                    let credentials = try await api.post("/v1/jobs", json: WebhookTests.spec("https://user:secret@example.com/hook"))
                    try expectError(credentials, .unprocessableContent, naming: ["notify.url", "credentials"])
                }
            }
        }
    }
}
