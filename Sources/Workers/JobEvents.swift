import Foundation
import Synchronization
import JobStore
import Training

/// Something that happened to a job, as the `GET /v1/jobs/{id}/events` stream tells it.
public enum JobEvent: Sendable {
    /// The job's state changed; `.queued` is also published when a job is submitted.
    case status(jobId: String, status: JobStatus)
    case epoch(jobId: String, metrics: EpochMetrics, epochs: Int)
    case log(jobId: String, message: String)
    /// The job finished (succeeded, failed or cancelled); no more events follow for it.
    case done(jobId: String, status: JobStatus)

    public var jobId: String {
        switch self {
        case .status(let id, _), .epoch(let id, _, _), .log(let id, _), .done(let id, _): id
        }
    }
}

/// Fans job events out to live subscribers (SSE streams, metrics). Events are not stored: a
/// client that connects late reads the job's state and metrics from the store first.
public final class JobEventHub: Sendable {
    private struct State {
        var nextToken = 0
        var subscribers: [Int: (jobId: String?, continuation: AsyncStream<JobEvent>.Continuation)] = [:]
        var observers: [@Sendable (JobEvent) -> Void] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// A stream of the events of one job (or of every job when `jobId` is nil).
    public func subscribe(jobId: String?) -> AsyncStream<JobEvent> {
        subscription(jobId: jobId).events
    }

    /// The same stream, with a way to end it early (a server shutting down closes its event streams).
    public func subscription(jobId: String?) -> (events: AsyncStream<JobEvent>, finish: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .bufferingNewest(256))
        let token = state.withLock { state in
            state.nextToken += 1
            state.subscribers[state.nextToken] = (jobId, continuation)
            return state.nextToken
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: token) }
        }
        return (stream, { continuation.finish() })
    }

    /// Calls `observer` synchronously for every event (for metrics); keep it fast.
    public func observe(_ observer: @escaping @Sendable (JobEvent) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    public func publish(_ event: JobEvent) {
        let observers = state.withLock { $0.observers }
        for observer in observers { observer(event) }
        deliver(event)
    }

    /// Hands an event of another server of the fleet to this server's subscribers (SSE streams).
    /// Observers (metrics, webhooks) are left out: the server that ran the job has told its own.
    public func deliver(_ event: JobEvent) {
        let targets = state.withLock { state in
            state.subscribers.values.filter { $0.jobId == nil || $0.jobId == event.jobId }
        }
        for target in targets {
            target.continuation.yield(event)
            // A job's own stream ends with it; a stream of every job goes on.
            if case .done = event, target.jobId != nil { target.continuation.finish() }
        }
    }
}


// MARK: - A fleet's events

extension JobEventHub {
    /// Joins the hub to the fleet's event bus: every event published here is broadcast, and every
    /// event another server broadcast is delivered to this server's subscribers. `nodeId` tells
    /// this server's own broadcasts apart (they come back through the bus too).
    public func relay(through bus: any JobEventBus, nodeId: String) throws {
        observe { event in
            if let payload = FleetEvent(event, origin: nodeId).encoded { bus.broadcast(payload) }
        }
        try bus.listen { [weak self] payload in
            guard let fleetEvent = FleetEvent(decoding: payload), fleetEvent.origin != nodeId, let event = fleetEvent.event else { return }
            self?.deliver(event)
        }
    }
}

/// A job event as it travels between servers (JSON text of a NOTIFY payload).
struct FleetEvent: Codable {
    var origin: String
    var kind: String
    var jobId: String
    var status: JobStatus?
    var metrics: EpochMetrics?
    var epochs: Int?
    var message: String?

    init(_ event: JobEvent, origin: String) {
        self.origin = origin
        jobId = event.jobId
        switch event {
        case .status(_, let status): kind = "status"; self.status = status
        case .epoch(_, let metrics, let epochs): kind = "epoch"; self.metrics = metrics; self.epochs = epochs
        case .log(_, let message): kind = "log"; self.message = message
        case .done(_, let status): kind = "done"; self.status = status
        }
    }

    init?(decoding payload: String) {
        guard let decoded = try? JSONDecoder().decode(Self.self, from: Data(payload.utf8)) else { return nil }
        self = decoded
    }

    var encoded: String? {
        (try? JSONEncoder().encode(self)).map { String(decoding: $0, as: UTF8.self) }
    }

    var event: JobEvent? {
        switch kind {
        case "status": status.map { .status(jobId: jobId, status: $0) }
        case "epoch": metrics.map { .epoch(jobId: jobId, metrics: $0, epochs: epochs ?? 0) }
        case "log": message.map { .log(jobId: jobId, message: $0) }
        case "done": status.map { .done(jobId: jobId, status: $0) }
        default: nil
        }
    }
}
