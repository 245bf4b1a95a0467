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
        let (targets, observers) = state.withLock { state in
            (state.subscribers.values.filter { $0.jobId == nil || $0.jobId == event.jobId }, state.observers)
        }
        for observer in observers { observer(event) }
        for target in targets {
            target.continuation.yield(event)
            // A job's own stream ends with it; a stream of every job goes on.
            if case .done = event, target.jobId != nil { target.continuation.finish() }
        }
    }
}

