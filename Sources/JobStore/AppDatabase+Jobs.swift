import Foundation
import GRDB

// Every state change is one write transaction. GRDB begins write transactions IMMEDIATE, so
// the check-then-change sequences below cannot interleave with another writer, in this
// process or another one.

extension AppDatabase: JobRepository {
    public func createJob(_ new: NewJob, limits: TenantLimits) throws -> (job: JobRecord, created: Bool) {
        try writer.write { db in
            // A retried POST finds the first job here (the UNIQUE (tenant, key) pair is the last line
            // of defense), even when the tenant has reached its limit since.
            if let key = new.idempotencyKey,
               let existing = try JobRecord.fetchOne(db, key: ["tenant": new.tenant, "idempotency_key": key]) {
                return (existing, false)
            }
            try Self.checkTenantLimits(db, tenant: new.tenant, adding: [new], limits: limits)
            let job = JobRecord(
                id: makeIdentifier(prefix: "job_"), tenant: new.tenant, name: new.name, priority: new.priority,
                datasetId: new.datasetId, spec: new.spec, maxAttempts: new.maxAttempts,
                epochs: new.epochs, idempotencyKey: new.idempotencyKey, createdAt: Date()
            )
            return (try job.insertAndFetch(db), true)
        }
    }

    /// Refuses (`JobStoreError.tooManyActiveJobs`, `.tooManyMPIProcesses`) `adding` jobs that would take
    /// the tenant's queued and running jobs past `limits`. Called in the inserting write transaction.
    static func checkTenantLimits(_ db: Database, tenant: String, adding: [NewJob], limits: TenantLimits) throws {
        if let limit = limits.activeJobs {
            let active = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND status IN ('queued', 'running')", arguments: [tenant]) ?? 0
            if active + adding.count > limit {
                throw JobStoreError.tooManyActiveJobs(tenant: tenant, active: active, adding: adding.count, limit: limit)
            }
        }
        let ranks = adding.reduce(0) { $0 + $1.mpiProcesses }
        if let limit = limits.mpiProcesses, ranks > 0 {
            let active = try Int.fetchOne(db, sql: """
                SELECT COALESCE(SUM(json_extract(spec, '$.distributed.processes')), 0) FROM jobs
                WHERE tenant = ? AND status IN ('queued', 'running')
                """, arguments: [tenant]) ?? 0
            if active + ranks > limit {
                throw JobStoreError.tooManyMPIProcesses(tenant: tenant, active: active, adding: ranks, limit: limit)
            }
        }
    }

    public func job(id: String) throws -> JobRecord? {
        try writer.read { db in try JobRecord.fetchOne(db, key: id) }
    }

    public func job(id: String, tenant: String) throws -> JobRecord? {
        try writer.read { db in try JobRecord.filter(key: id).filter(Column("tenant") == tenant).fetchOne(db) }
    }

    public func listJobs(tenant: String, status: JobStatus?, limit: Int, cursor: String?) throws -> (jobs: [JobRecord], nextCursor: String?) {
        let limit = max(limit, 1)
        var request = JobRecord.filter(Column("tenant") == tenant).order(Column("created_at").desc, Column("id").desc)
        if let status {
            request = request.filter(Column("status") == status.rawValue)
        }
        if let cursor {
            let after = try ListCursor(decoding: cursor)
            request = request.filter(sql: "(created_at, id) < (?, ?)", arguments: [after.createdAt, after.id])
        }
        // One row more than asked tells whether there is a next page.
        let rows = try writer.read { db in try Row.fetchAll(db, request.limit(limit + 1)) }
        let page = rows.prefix(limit)
        let jobs = try page.map(JobRecord.init(row:))
        let nextCursor = rows.count > limit ? page.last.map { ListCursor(after: $0).encoded } : nil
        return (jobs, nextCursor)
    }

    /// The next job to run. Kept apart so the tests can check that `jobs_queue` serves it.
    static let nextQueuedJobSQL = """
        SELECT id FROM jobs WHERE status = 'queued' ORDER BY priority DESC, created_at, rowid LIMIT 1
        """

    public func claimNextJob() throws -> JobRecord? {
        try writer.write { db in
            try JobRecord.fetchOne(db, sql: """
                UPDATE jobs
                SET status = 'running', started_at = ?, attempt = attempt + 1,
                    finished_at = NULL, error_code = NULL, error_message = NULL
                WHERE id = (\(Self.nextQueuedJobSQL))
                RETURNING *
                """, arguments: [Date()])
        }
    }

    public func recordEpoch(_ row: MetricsRow, progress: Double, latest: String, checkpointEpoch: Int?) throws {
        try writer.write { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET epoch = ?, progress = ?, latest = ?, checkpoint_epoch = coalesce(?, checkpoint_epoch)
                    WHERE id = ? AND status = 'running'
                    """,
                arguments: [row.epoch, progress, latest, checkpointEpoch, row.jobId])
            guard db.changesCount == 1 else {
                throw JobStoreError.wrongState("job \(row.jobId) is not running")
            }
            // A job resumed from a checkpoint or retried runs epochs again: the new row replaces
            // the old one, and rows of later epochs from the earlier attempt are stale.
            try MetricsRow
                .filter(Column("job_id") == row.jobId && Column("epoch") > row.epoch)
                .deleteAll(db)
            try row.upsert(db)
        }
    }

    public func metrics(jobId: String) throws -> [MetricsRow] {
        try writer.read { db in
            try MetricsRow.filter(Column("job_id") == jobId).order(Column("epoch")).fetchAll(db)
        }
    }

    public func metrics(jobId: String, afterEpoch: Int) throws -> [MetricsRow] {
        try writer.read { db in
            try MetricsRow.filter(Column("job_id") == jobId && Column("epoch") > afterEpoch).order(Column("epoch")).fetchAll(db)
        }
    }

    public func finishJob(
        id: String, status: JobStatus, errorCode: String?, errorMessage: String?,
        result: String?, bestEpoch: Int?, stoppedEarly: Bool
    ) throws {
        guard status.isFinished else {
            throw JobStoreError.wrongState("\(status.rawValue) is not a final status")
        }
        try writer.write { db in
            // A job that succeeds is complete even if it stopped early.
            try db.execute(sql: """
                UPDATE jobs
                SET status = :status, finished_at = :now, error_code = :errorCode,
                    error_message = :errorMessage, result = :result, best_epoch = :bestEpoch,
                    stopped_early = :stoppedEarly, checkpoint_epoch = NULL,
                    progress = CASE WHEN :status = 'succeeded' THEN 1 ELSE progress END
                WHERE id = :id AND status = 'running'
                """, arguments: [
                    "status": status.rawValue, "now": Date(), "errorCode": errorCode,
                    "errorMessage": errorMessage, "result": result, "bestEpoch": bestEpoch,
                    "stoppedEarly": stoppedEarly, "id": id,
                ])
            guard db.changesCount == 1 else {
                throw JobStoreError.wrongState("job \(id) is not running")
            }
        }
    }

    public func requestCancel(id: String, tenant: String) throws -> JobRecord? {
        try writer.write { db in
            guard var job = try JobRecord.filter(key: id).filter(Column("tenant") == tenant).fetchOne(db) else { return nil }
            switch job.status {
            case .queued:
                job.status = .cancelled
                job.finishedAt = Date()
            case .running:
                job.cancelRequested = true  // the trainer checks it between batches
            case .succeeded, .failed, .cancelled:
                return job
            }
            return try job.updateAndFetch(db)
        }
    }

    public func rewindJob(id: String, toEpoch epoch: Int) throws {
        try writer.write { db in
            try MetricsRow.filter(Column("job_id") == id && Column("epoch") > epoch).deleteAll(db)
            try db.execute(sql: "UPDATE jobs SET epoch = ? WHERE id = ? AND status = 'running'", arguments: [epoch, id])
        }
    }

    public func isCancelRequested(id: String) throws -> Bool {
        try writer.read { db in
            try Bool.fetchOne(db, sql: "SELECT cancel_requested FROM jobs WHERE id = ?", arguments: [id]) ?? false
        }
    }

    public func requeueInterruptedJobs() throws -> Int {
        try writer.write { db in
            // Their cancel request can no longer reach a trainer: honor it now.
            try db.execute(
                sql: "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE status = 'running' AND cancel_requested",
                arguments: [Date()])
            try db.execute(sql: "UPDATE jobs SET status = 'queued' WHERE status = 'running'")
            return db.changesCount
        }
    }

    public func requeueJob(id: String, countingAttempt: Bool) throws {
        try writer.write { db in
            // A cancel request that arrived during the failed attempt wins over a retry.
            try db.execute(sql: """
                UPDATE jobs
                SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                    finished_at = CASE WHEN cancel_requested THEN :now END,
                    handed_back = handed_back + CASE WHEN :counting THEN 0 ELSE 1 END
                WHERE id = :id AND status = 'running'
                """, arguments: ["now": Date(), "id": id, "counting": countingAttempt])
            guard db.changesCount == 1 else {
                throw JobStoreError.wrongState("job \(id) is not running")
            }
        }
    }

    public func deleteJob(id: String, tenant: String) throws -> Bool {
        try writer.write { db in
            guard let job = try JobRecord.filter(key: id).filter(Column("tenant") == tenant).fetchOne(db) else { return false }
            guard job.status.isFinished else {
                throw JobStoreError.wrongState("job \(id) is \(job.status.rawValue)")
            }
            // A queued or running job that learns from this one's model (distillation.teacher_job, init.from_job).
            if let user = try String.fetchOne(db, sql: """
                SELECT id FROM jobs WHERE status IN ('queued', 'running') AND instr(spec, ?) > 0 LIMIT 1
                """, arguments: ["\"\(id)\""]) {
                throw JobStoreError.wrongState("job \(id)'s model is the teacher or starting point of \(user), which has not ended; delete it once that job ends")
            }
            return try JobRecord.deleteOne(db, key: id)  // metrics go too: ON DELETE CASCADE
        }
    }

    public func countJobsByStatus() throws -> [JobStatus: Int] {
        let rows = try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS count FROM jobs GROUP BY status")
        }
        var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0, 0) })
        for row in rows {
            if let status = JobStatus(rawValue: row["status"]) {
                counts[status] = row["count"]
            }
        }
        return counts
    }

    public func activeJobCount(datasetId: String) throws -> Int {
        try writer.read { db in try Self.activeJobCount(db, datasetId: datasetId) }
    }

    static func activeJobCount(_ db: Database, datasetId: String) throws -> Int {
        try Int.fetchOne(
            // Its data, or its validation or test set: a spec names those by id (quoted, as JSON writes it).
            db, sql: "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running') AND (dataset_id = ? OR instr(spec, ?) > 0)",
            arguments: [datasetId, "\"\(datasetId)\""]) ?? 0
    }
}

extension ListCursor {
    init(after row: Row) {
        self.init(createdAt: row["created_at"], id: row["id"])
    }
}
