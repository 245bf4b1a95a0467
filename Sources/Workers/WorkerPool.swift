import Datasets
import Dispatch
import Foundation
import JobStore
import Logging
import Synchronization
import Tensors
import Training

public struct WorkerConfiguration: Sendable {
    /// Jobs trained at once, one Dispatch thread each.
    public var workerCount: Int
    /// OpenBLAS threads for the process; nil splits the cores between the workers.
    public var blasThreads: Int?
    /// The data folder: `datasets/` and `models/` live under it.
    public var dataDirectory: URL
    /// How often an idle worker looks at the queue when nobody wakes it.
    public var pollInterval: Double
    /// Which jobs train in processes of their own, and how those are started.
    public var processes: WorkerProcessConfiguration

    /// A fleet (PostgreSQL): how often the heartbeat renews this node's leases and requeues the
    /// jobs of nodes whose leases expired. Nil (one process, SQLite): no heartbeat.
    public var heartbeatInterval: Double?

    public init(workerCount: Int = 1, blasThreads: Int? = nil, dataDirectory: URL, pollInterval: Double = 1.0,
                heartbeatInterval: Double? = nil, processes: WorkerProcessConfiguration = WorkerProcessConfiguration()) {
        self.workerCount = workerCount
        self.blasThreads = blasThreads
        self.dataDirectory = dataDirectory
        self.pollInterval = pollInterval
        self.heartbeatInterval = heartbeatInterval
        self.processes = processes
    }
}

/// The pool of worker threads: each claims a job (one write transaction), trains it, reports
/// every epoch and finishes it. Runs on Dispatch threads so the training loop never blocks the
/// server's event loops.
public final class WorkerPool: Sendable {
    public let configuration: WorkerConfiguration
    private let jobs: any JobRepository
    private let runner: JobRunner
    private let logger: Logger
    private let wakeUp = DispatchSemaphore(value: 0)
    private let state = Mutex(PoolState())
    /// A database that is down fails every poll of every worker: one line per 30 s says so, not dozens a second.
    private let storeErrors = FailureLog(every: 30)

    private struct PoolState {
        var isRunning = false
        var isStopping = false
        var activeWorkers = 0
        /// Jobs a client cancelled, checked between batches without a database read.
        var cancelled: Set<String> = []
        var running: Set<String> = []
    }

    public init(configuration: WorkerConfiguration, jobs: any JobRepository, datasets: any DatasetRepository,
                events: JobEventHub, logger: Logger) {
        self.configuration = configuration
        self.jobs = jobs
        self.logger = logger
        let launcher = WorkerProcessLauncher(configuration: configuration.processes, dataDirectory: configuration.dataDirectory, jobs: jobs,
                                      events: events, logger: logger)
        runner = JobRunner(jobs: jobs, datasets: datasets, events: events, dataDirectory: configuration.dataDirectory, logger: logger,
                           launcher: launcher)
    }

    /// Requeues jobs a previous process left running, then starts the worker threads.
    public func start() throws {
        let requeued = try jobs.requeueInterruptedJobs()
        if requeued > 0 { logger.info("requeued \(requeued) interrupted job(s)") }
        let count = max(1, configuration.workerCount)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreadCount(configuration.blasThreads ?? max(1, cores / count))
        state.withLock {
            $0.isRunning = true
            $0.activeWorkers = count
        }
        for index in 0..<count {
            let thread = Thread { [self] in workLoop(index) }
            thread.name = "descent-worker-\(index)"
            thread.stackSize = 8 << 20
            thread.start()
        }
        if let interval = configuration.heartbeatInterval {
            state.withLock { $0.activeWorkers += 1 }
            let thread = Thread { [self] in heartbeatLoop(every: interval) }
            thread.name = "descent-heartbeat"
            thread.start()
        }
        logger.info("started \(count) worker(s), \(BLAS.threadCount) BLAS thread(s)")
    }

    /// A fleet's heartbeat: renews the leases of the jobs this node runs, and puts back in the queue
    /// the jobs whose lease expired (their node died), waking a worker to claim one.
    private func heartbeatLoop(every interval: Double) {
        defer { state.withLock { $0.activeWorkers -= 1 } }
        while !isStopping {
            do {
                try jobs.renewLeases(jobIds: Array(state.withLock { $0.running }))
                let requeued = try jobs.requeueExpiredLeases()
                if requeued > 0 {
                    logger.info("requeued \(requeued) job(s) whose lease expired")
                    for _ in 0..<requeued { wakeUp.signal() }
                }
            } catch {
                storeErrors.log(logger, "heartbeat: \(StoreFailureText.of(error))")
            }
            // Sleeps in short steps so a shutdown does not wait for a whole interval.
            let until = Date().addingTimeInterval(interval)
            while !isStopping, Date() < until { Thread.sleep(forTimeInterval: min(0.1, interval)) }
        }
    }

    /// Wakes an idle worker: a job was queued.
    public func jobWasQueued() {
        wakeUp.signal()
    }

    /// Asks the worker running `jobId` to stop at the next batch.
    public func cancel(jobId: String) {
        state.withLock { _ = $0.cancelled.insert(jobId) }
    }

    /// Stops taking jobs; running jobs stop at their next batch and go back to the queue, so the
    /// next start resumes them. Returns when every worker has left.
    public func shutdown() async {
        let count = state.withLock { state -> Int in
            state.isStopping = true
            return state.activeWorkers
        }
        for _ in 0..<count { wakeUp.signal() }
        while state.withLock({ $0.activeWorkers }) > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    var isStopping: Bool { state.withLock { $0.isStopping } }

    func shouldStop(jobId: String) -> StopReason? {
        state.withLock { state in
            if state.cancelled.contains(jobId) { return .cancelled }
            if state.isStopping { return .shutdown }
            return nil
        }
    }

    private func workLoop(_ index: Int) {
        defer { state.withLock { $0.activeWorkers -= 1 } }
        while !isStopping {
            let job: JobRecord?
            do { job = try jobs.claimNextJob() } catch {
                storeErrors.log(logger, "could not claim a job: \(StoreFailureText.of(error))")
                job = nil
            }
            guard let job else {
                _ = wakeUp.wait(timeout: .now() + configuration.pollInterval)
                continue
            }
            state.withLock { _ = $0.running.insert(job.id) }
            runner.run(job, stopCheck: { [self] in shouldStop(jobId: job.id) })
            state.withLock {
                $0.running.remove(job.id)
                $0.cancelled.remove(job.id)
            }
        }
    }
}

enum StopReason {
    case cancelled, shutdown
    /// An MPI rank 0 whose attempt is no longer the job's (its server died and another attempt started):
    /// it stops and leaves the job to the attempt that has it.
    case superseded
}

/// Logs a failure that repeats at most once per `interval` seconds, saying how many were left out.
final class FailureLog: Sendable {
    private let interval: Double
    private let state = Mutex((last: Date.distantPast, suppressed: 0))

    init(every interval: Double) { self.interval = interval }

    func log(_ logger: Logger, _ message: String) {
        let suppressed: Int? = state.withLock { state in
            guard Date().timeIntervalSince(state.last) >= interval else {
                state.suppressed += 1
                return nil
            }
            defer { state = (Date(), 0) }
            return state.suppressed
        }
        guard let suppressed else { return }
        logger.error("\(message)\(suppressed > 0 ? " (and \(suppressed) more like it in the last \(Int(interval)) s)" : "")")
    }
}
