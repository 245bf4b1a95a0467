import Foundation
import JobStore
import Logging
import Tensors
import Training

/// Whether the job has moved on from this attempt (requeued, claimed again, finished by someone else),
/// looked up in the store at most once a second.
private final class AttemptCheck: @unchecked Sendable {
    let jobs: any JobRepository
    let job: JobRecord
    private let lock = NSLock()
    private var lastCheck = Date()
    private var superseded = false

    init(jobs: any JobRepository, job: JobRecord) {
        self.jobs = jobs
        self.job = job
    }

    func isSuperseded() -> Bool {
        lock.withLock {
            guard !superseded, Date().timeIntervalSince(lastCheck) >= 1 else { return superseded }
            lastCheck = Date()
            if let current = try? jobs.job(id: job.id) {
                superseded = current.status != .running || current.attempt != job.attempt
            }
            return superseded
        }
    }
}

/// A job's worker process, as `descent worker` runs it: one rank of a `distributed.processes` job under
/// mpirun, or (no collective) the one process that trains a job in isolation from the server. It loads
/// the job and its data exactly as the server's worker thread would (the same `JobRunner`), trains (its
/// share of every step), and — rank 0 only — records epochs, checkpoints, the model and the outcome in
/// the server's database.
public enum DistributedWorker {
    /// How a rank's part ended.
    public enum Ending: Equatable {
        /// Every rank reached the end together: finalize MPI and exit 0.
        case finished
        /// This rank cannot go on with the others (an error, a cancelled or failed job): abort, which ends every rank.
        case abort(code: Int32, reason: String)
    }

    /// Carries a fleet's `postgres://` URL from the server through mpirun to every rank.
    public static let databaseVariable = "DESCENT_DATABASE"

    /// The store a rank opens: the server's SQLite file, or the fleet's PostgreSQL as node `nodeId`
    /// (the node that holds the job's lease, so that rank 0's writes count).
    static func openStore(_ database: String, nodeId: String?) throws -> any JobRepository & DatasetRepository {
        guard PostgresStore.isPostgresURL(database) else { return try AppDatabase.open(path: database) }
        guard let nodeId else { throw PostgresStoreError.invalidURL("\(database) (descent worker needs --node-id with a PostgreSQL database)") }
        return try PostgresStore.open(url: database, nodeId: nodeId)
    }

    public static func run(jobId: String, dataDirectory: URL, databasePath: String, nodeId: String? = nil,
                           collective: (any ProcessCollective)?, blasThreads: Int, logger: Logger) -> Ending {
        BLAS.setThreadCount(blasThreads)
        var logger = logger
        if let collective { logger[metadataKey: "rank"] = "\(collective.rank)/\(collective.size)" }
        let database: any JobRepository & DatasetRepository
        do { database = try openStore(databasePath, nodeId: nodeId) } catch {
            let shown = PostgresStore.isPostgresURL(databasePath) ? "(PostgreSQL)" : databasePath
            return .abort(code: 3, reason: "cannot open the database \(shown): \(error)")
        }
        let job: JobRecord
        do {
            guard let record = try database.job(id: jobId) else { return .abort(code: 3, reason: "no job \(jobId)") }
            job = record
        } catch {
            return .abort(code: 3, reason: "cannot read job \(jobId): \(error)")
        }
        guard job.status == .running else { return .abort(code: 3, reason: "job \(jobId) is \(job.status), not running") }
        let jobs = AttemptScopedJobs(base: database, jobId: job.id, attempt: job.attempt)
        let runner = JobRunner(jobs: jobs, datasets: database, events: JobEventHub(), dataDirectory: dataDirectory, logger: logger)
        guard let collective else {
            // The job's only process: the server watches the store for the outcome.
            let check = AttemptCheck(jobs: jobs, job: job)
            runner.run(job, stopCheck: { check.isSuperseded() ? .superseded : nil })
            return .finished
        }
        if collective.rank == 0 {
            // Cancellation reaches rank 0 through the store (the observer looks now and then) or as mpirun's SIGTERM.
            // If the server that started this attempt died and a new one requeued the job, this attempt stops.
            let check = AttemptCheck(jobs: jobs, job: job)
            runner.run(job, stopCheck: { check.isSuperseded() ? .superseded : nil }, collective: collective)
            let status = (try? database.job(id: jobId))?.status
            // Only a job that succeeded had every rank train to the end; otherwise the others may be
            // waiting in a collective call, and only an abort frees them.
            return status == .succeeded ? .finished : .abort(code: 1, reason: "rank 0 ended the job as \(status.map { "\($0)" } ?? "unknown")")
        }
        do {
            try runner.runFollower(job, collective: collective)
            return .finished
        } catch let error as TrainingError {
            // The same loss on every rank: rank 0 meets the same error and records it.
            if case .diverged = error { return .finished }
            return .abort(code: 2, reason: "\(error)")
        } catch {
            return .abort(code: 2, reason: "\(error)")
        }
    }
}

/// The store as rank 0 of one attempt may use it: every write to the job first checks that the job is
/// still running this attempt. A server killed with -9 leaves its mpirun running; when the restarted
/// server has requeued or claimed the job again, the orphaned attempt's writes fail instead of
/// overwriting the new attempt's epochs or state (and its stop check ends it within a second).
public struct AttemptScopedJobs: JobRepository {
    let base: any JobRepository
    let jobId: String
    let attempt: Int

    public init(base: any JobRepository, jobId: String, attempt: Int) {
        self.base = base
        self.jobId = jobId
        self.attempt = attempt
    }

    private func ensureCurrent(_ id: String) throws {
        guard id == jobId, let current = try base.job(id: id), current.status == .running, current.attempt == attempt else {
            throw JobStoreError.wrongState("attempt \(attempt) of job \(jobId) is no longer the job's")
        }
    }

    public func createJob(_ job: NewJob, limits: TenantLimits) throws -> (job: JobRecord, created: Bool) {
        try base.createJob(job, limits: limits)
    }
    public func job(id: String) throws -> JobRecord? { try base.job(id: id) }
    public func job(id: String, tenant: String) throws -> JobRecord? { try base.job(id: id, tenant: tenant) }
    public func listJobs(tenant: String, status: JobStatus?, limit: Int, cursor: String?) throws -> (jobs: [JobRecord], nextCursor: String?) {
        try base.listJobs(tenant: tenant, status: status, limit: limit, cursor: cursor)
    }
    public func claimNextJob() throws -> JobRecord? {
        throw JobStoreError.wrongState("an MPI rank trains the job it was started for and claims none")
    }
    public func recordEpoch(_ row: MetricsRow, progress: Double, latest: String, checkpointEpoch: Int?) throws {
        try ensureCurrent(row.jobId)
        try base.recordEpoch(row, progress: progress, latest: latest, checkpointEpoch: checkpointEpoch)
    }
    public func rewindJob(id: String, toEpoch epoch: Int) throws {
        try ensureCurrent(id)
        try base.rewindJob(id: id, toEpoch: epoch)
    }
    public func metrics(jobId: String) throws -> [MetricsRow] { try base.metrics(jobId: jobId) }
    public func metrics(jobId: String, afterEpoch: Int) throws -> [MetricsRow] { try base.metrics(jobId: jobId, afterEpoch: afterEpoch) }
    public func finishJob(id: String, status: JobStatus, errorCode: String?, errorMessage: String?, result: String?, bestEpoch: Int?,
                   stoppedEarly: Bool) throws {
        try ensureCurrent(id)
        try base.finishJob(id: id, status: status, errorCode: errorCode, errorMessage: errorMessage, result: result, bestEpoch: bestEpoch,
                           stoppedEarly: stoppedEarly)
    }
    public func requestCancel(id: String, tenant: String) throws -> JobRecord? { try base.requestCancel(id: id, tenant: tenant) }
    public func isCancelRequested(id: String) throws -> Bool { try base.isCancelRequested(id: id) }
    public func requeueInterruptedJobs() throws -> Int {
        throw JobStoreError.wrongState("only a server requeues interrupted jobs")
    }
    public func requeueJob(id: String, countingAttempt: Bool) throws {
        try ensureCurrent(id)
        try base.requeueJob(id: id, countingAttempt: countingAttempt)
    }
    public func deleteJob(id: String, tenant: String) throws -> Bool { try base.deleteJob(id: id, tenant: tenant) }
    public func countJobsByStatus() throws -> [JobStatus: Int] { try base.countJobsByStatus() }
    public func activeJobCount(datasetId: String) throws -> Int { try base.activeJobCount(datasetId: datasetId) }
}
