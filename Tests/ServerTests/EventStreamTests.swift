import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Synchronization
import Testing

/// `GET /v1/jobs/{id}/events` as a client that reconnects sees it.
@Suite("Event stream resumption")
struct EventStreamTests {
    /// The events of an SSE body: (event, id, data) in order.
    static func parse(_ text: String) -> [(event: String, id: Int?, data: String)] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var event: String?, id: Int?, data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                if line.hasPrefix("id: ") { id = Int(line.dropFirst(4)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return event.map { ($0, id, data) }
        }
    }

    @Test("epoch events carry their epoch as id, and Last-Event-ID replays only the epochs after it, once each")
    func lastEventIdResumes() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let id = try await api.submit([
                "dataset": ["builtin": "moons", "samples": 200],
                "model": ["layers": [["type": "dense", "units": 8, "activation": "relu"], ["type": "dense", "units": 2]]],
                "training": ["epochs": 6],
            ])
            #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")

            let fresh = Self.parse(try await api.get("/v1/jobs/\(id)/events").text)
            #expect(fresh.map(\.event) == ["status", "done"], "a client that missed nothing gets the state and the end")

            let resumed = try await api.get("/v1/jobs/\(id)/events", headers: [HTTPField.Name("Last-Event-ID")!: "3"])
            #expect(resumed.text.hasPrefix("retry: 2000\n\n"))
            let events = Self.parse(resumed.text)
            #expect(events.map(\.event) == ["status", "epoch", "epoch", "epoch", "done"])
            #expect(events.compactMap(\.id) == [4, 5, 6])
            let rows = events.filter { $0.event == "epoch" }.compactMap { try? JSONValue.parse(Data($0.data.utf8)) }
            #expect(rows.map { $0["epoch"]?.int } == [4, 5, 6])
            #expect(rows.allSatisfy { $0["epochs"]?.int == 6 && $0["train_loss"]?.number != nil })

            // The query parameter does the same for clients that cannot set headers.
            let byQuery = Self.parse(try await api.get("/v1/jobs/\(id)/events?last_event_id=5").text)
            #expect(byQuery.compactMap(\.id) == [6])
        }
    }
}

/// `GET /v1/events`, the stream of every job of a tenant that keeps the status page's jobs table live.
@Suite("Tenant event stream")
struct TenantEventStreamTests {
    @Test("the stream tells a tenant's client each of its jobs' submission, start, epochs and end, and nothing of another tenant's jobs")
    func streamsTheTenantsJobsOnly() async throws {
        try await withTwoTenants(ServerOptions(runsWorkers: true), setup: .live) { tenants in
            let port = try #require(tenants.acme.port)
            let recorder = EventStreamRecorder(url: URL(string: "http://127.0.0.1:\(port)/v1/events")!, token: tenants.acme.token)
            defer { recorder.stop() }
            try await recorder.waitFor("retry: 2000")

            let theirs = try await tenants.globex.submit(try Specs.moons(epochs: 2))
            let ours = try await tenants.acme.submit(try Specs.moons(epochs: 4))
            #expect(try await tenants.acme.waitUntilFinished(ours)["status"] == "succeeded")
            #expect(try await tenants.globex.waitUntilFinished(theirs)["status"] == "succeeded")
            try await recorder.waitFor("event: done")

            let events = EventStreamTests.parse(recorder.text)
            let payloads = events.compactMap { event in (try? JSONValue.parse(Data(event.data.utf8))).map { (event.event, $0) } }
            #expect(payloads.allSatisfy { $0.1["id"]?.string == ours }, "only acme's job: \(recorder.text)")
            #expect(payloads.map(\.0) == ["status", "status", "epoch", "epoch", "epoch", "epoch", "done"], "\(recorder.text)")
            #expect(payloads.prefix(2).map { $0.1["status"]?.string } == ["queued", "running"])
            let epochs = payloads.filter { $0.0 == "epoch" }.map(\.1)
            #expect(epochs.map { $0["epoch"]?.int } == [1, 2, 3, 4])
            #expect(epochs.allSatisfy { $0["epochs"]?.int == 4 && $0["latest"]?["train_loss"]?.number != nil })
            #expect(epochs.last?["progress"]?.number == 1)
            let done = try #require(payloads.last?.1)
            #expect(done["status"]?.string == "succeeded" && done["result"]?["parameters"]?.int != nil, "the finished job as GET shows it: \(done)")
            #expect(!recorder.text.contains(theirs))
        }
    }
}

/// Reads a Server-Sent Events response as it arrives (the test client only returns whole bodies).
final class EventStreamRecorder: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let received = Mutex("")
    private var session: URLSession!

    init(url: URL, token: String?) {
        super.init()
        session = URLSession(configuration: .ephemeral, delegate: self, delegateQueue: nil)
        var request = URLRequest(url: url)
        request.timeoutInterval = 300
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        session.dataTask(with: request).resume()
    }

    var text: String { received.withLock { $0 } }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        received.withLock { $0 += String(decoding: data, as: UTF8.self) }
    }

    /// Waits until the stream has shown `marker`; fails after `timeout`.
    func waitFor(_ marker: String, timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let deadline = ContinuousClock.now + timeout
        while !text.contains(marker) {
            guard ContinuousClock.now < deadline else {
                Issue.record("the event stream did not show \"\(marker)\" in \(timeout); it showed: \(text)", sourceLocation: sourceLocation)
                throw TimedOut()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func stop() { session.invalidateAndCancel() }
}
