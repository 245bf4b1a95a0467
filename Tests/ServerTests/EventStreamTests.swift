import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
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
