import Foundation
import JobStore
import Synchronization
import Testing
import Workers

/// A bus in memory: every broadcast reaches every listener at once, the broadcaster's own included,
/// as PostgreSQL's NOTIFY reaches every LISTENing connection.
final class InMemoryEventBus: JobEventBus {
    private let handlers = Mutex<[@Sendable (String) -> Void]>([])

    func broadcast(_ payload: String) {
        for handler in handlers.withLock({ $0 }) { handler(payload) }
    }

    func listen(_ handler: @escaping @Sendable (String) -> Void) throws {
        handlers.withLock { $0.append(handler) }
    }
}

@Suite("Job events relayed between the servers of a fleet")
struct FleetEventRelayTests {
    @Test("an event published on one server reaches the other's subscribers once, and not its observers")
    func relayedOnceToSubscribersOnly() async throws {
        let bus = InMemoryEventBus()
        let (hubA, hubB) = (JobEventHub(), JobEventHub())
        try hubA.relay(through: bus, nodeId: "a")
        try hubB.relay(through: bus, nodeId: "b")
        let observedOnB = Mutex(0)
        hubB.observe { _ in observedOnB.withLock { $0 += 1 } }
        let onA = hubA.subscribe(jobId: "job_1")
        let onB = hubB.subscribe(jobId: "job_1")

        hubA.publish(.status(jobId: "job_1", status: .running))
        hubA.publish(.log(jobId: "job_1", message: "epoch 1 of 2"))
        hubA.publish(.status(jobId: "job_2", status: .queued))
        hubA.publish(.done(jobId: "job_1", status: .succeeded))

        // A job's stream ends with its done event: both streams can be read to the end.
        var seenOnA: [String] = []
        for await event in onA { seenOnA.append(Self.describe(event)) }
        var seenOnB: [String] = []
        for await event in onB { seenOnB.append(Self.describe(event)) }
        let expected = ["status running", "log epoch 1 of 2", "done succeeded"]
        #expect(seenOnA == expected, "the publishing server's own broadcast must not come back twice")
        #expect(seenOnB == expected)
        #expect(observedOnB.withLock { $0 } == 0, "metrics and webhooks belong to the server that ran the job")
    }

    static func describe(_ event: JobEvent) -> String {
        switch event {
        case .status(_, let status): "status \(status.rawValue)"
        case .epoch(_, let metrics, _): "epoch \(metrics.epoch)"
        case .log(_, let message): "log \(message)"
        case .done(_, let status): "done \(status.rawValue)"
        }
    }
}
