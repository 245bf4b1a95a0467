import Foundation
import PostgresNIO

// The semantics are `AppDatabase`'s (read its comments); what differs is how they are made safe
// with several writers at once: PostgreSQL runs READ COMMITTED, so every check-then-change takes a
// row lock (FOR UPDATE) or the tenant's advisory lock, and the claim skips rows other nodes lock.

extension PostgresStore: JobRepository {
    public func createJob(_ new: NewJob, limits: TenantLimits) throws -> (job: JobRecord, created: Bool) {
        try transaction { transaction in
            try transaction.lock("tenant:\(new.tenant)")
            if let key = new.idempotencyKey,
               let existing = try transaction.query("SELECT * FROM jobs WHERE tenant = \(new.tenant) AND idempotency_key = \(key)").first {
                return (try JobRecord(existing), false)
            }
            try Self.checkTenantLimits(transaction, tenant: new.tenant, adding: [new], limits: limits)
            let job = try Self.insertJob(transaction, new, id: makeIdentifier(prefix: "job_"), createdAt: Date(),
                                         idempotencyKey: new.idempotencyKey, studyId: nil, studyParameters: nil)
            return (job, true)
        }
    }

    static func insertJob(_ transaction: PostgresTransaction, _ new: NewJob, id: String, createdAt: Date, idempotencyKey: String?,
                          studyId: String?, studyParameters: String?) throws -> JobRecord {
        let rows = try transaction.query("""
            INSERT INTO jobs (id, tenant, name, priority, dataset_id, spec, max_attempts, epochs, idempotency_key, created_at,
                              study_id, study_parameters)
            VALUES (\(id), \(new.tenant), \(new.name), \(new.priority), \(new.datasetId), \(new.spec), \(new.maxAttempts),
                    \(new.epochs), \(idempotencyKey), \(createdAt), \(studyId), \(studyParameters))
            RETURNING *
            """)
        return try JobRecord(rows[0])
    }

    /// As `AppDatabase.checkTenantLimits`, under the tenant's advisory lock the caller holds.
    static func checkTenantLimits(_ transaction: PostgresTransaction, tenant: String, adding: [NewJob], limits: TenantLimits) throws {
        if let limit = limits.activeJobs {
            let active = try transaction.query(
                "SELECT COUNT(*) AS count FROM jobs WHERE tenant = \(tenant) AND status IN ('queued', 'running')")[0].value("count", as: Int.self)
            if active + adding.count > limit {
                throw JobStoreError.tooManyActiveJobs(tenant: tenant, active: active, adding: adding.count, limit: limit)
            }
        }
        let ranks = adding.reduce(0) { $0 + $1.mpiProcesses }
        if let limit = limits.mpiProcesses, ranks > 0 {
            let active = try transaction.query("""
                SELECT COALESCE(SUM((spec::jsonb #>> '{distributed,processes}')::bigint), 0)::bigint AS count FROM jobs
                WHERE tenant = \(tenant) AND status IN ('queued', 'running')
                """)[0].value("count", as: Int.self)
            if active + ranks > limit {
                throw JobStoreError.tooManyMPIProcesses(tenant: tenant, active: active, adding: ranks, limit: limit)
            }
        }
    }

    public func job(id: String) throws -> JobRecord? {
        try query("SELECT * FROM jobs WHERE id = \(id)").first.map(JobRecord.init)
    }

    public func job(id: String, tenant: String) throws -> JobRecord? {
        try query("SELECT * FROM jobs WHERE id = \(id) AND tenant = \(tenant)").first.map(JobRecord.init)
    }

    public func listJobs(tenant: String, status: JobStatus?, limit: Int, cursor: String?) throws -> (jobs: [JobRecord], nextCursor: String?) {
        let limit = max(limit, 1)
        let after = try cursor.map(ListCursor.init(decodingTimestamp:))
        // One row more than asked tells whether there is a next page.
        let rows = try query("""
            SELECT *, created_at::text AS cursor_created_at FROM jobs
            WHERE tenant = \(tenant) AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
              AND (\(after?.createdAt)::timestamptz IS NULL OR (created_at, id) < (\(after?.createdAt)::timestamptz, \(after?.id ?? "")))
            ORDER BY created_at DESC, id DESC
            LIMIT \(limit + 1)
            """)
        let page = rows.prefix(limit)
        let jobs = try page.map(JobRecord.init)
        let nextCursor = try rows.count > limit ? page.last.map { row in
            ListCursor(createdAt: try row.value("cursor_created_at"), id: try row.value("id")).encoded
        } : nil
        return (jobs, nextCursor)
    }

    /// Marks the next queued job running for this node, skipping rows another node is claiming.
    public func claimNextJob() throws -> JobRecord? {
        try query("""
            UPDATE jobs
            SET status = 'running', started_at = \(Date()), attempt = attempt + 1,
                finished_at = NULL, error_code = NULL, error_message = NULL,
                lease_owner = \(nodeId), lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
            WHERE id = (
                SELECT id FROM jobs WHERE status = 'queued' ORDER BY priority DESC, created_at, seq
                LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING *
            """).first.map(JobRecord.init)
    }

    public func recordEpoch(_ row: MetricsRow, progress: Double, latest: String, checkpointEpoch: Int?) throws {
        try transaction { transaction in
            let changed = try transaction.changes("""
                UPDATE jobs SET epoch = \(row.epoch), progress = \(progress), latest = \(latest),
                    checkpoint_epoch = coalesce(\(checkpointEpoch), checkpoint_epoch)
                WHERE id = \(row.jobId) AND status = 'running' AND lease_owner = \(nodeId)
                """)
            guard changed == 1 else { throw JobStoreError.wrongState("job \(row.jobId) is not running on node \(nodeId)") }
            try transaction.query("DELETE FROM metrics WHERE job_id = \(row.jobId) AND epoch > \(row.epoch)")
            try transaction.query("""
                INSERT INTO metrics (job_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy, lr, grad_norm, penalty,
                                     sparsity, seconds, samples_per_second, d_loss, g_loss, d_real, d_fake, val_class_recall, val_macro_f1)
                VALUES (\(row.jobId), \(row.epoch), \(row.trainLoss), \(row.trainAccuracy), \(row.valLoss), \(row.valAccuracy),
                        \(row.lr), \(row.gradNorm), \(row.penalty), \(row.sparsity), \(row.seconds), \(row.samplesPerSecond),
                        \(row.dLoss), \(row.gLoss), \(row.dReal), \(row.dFake), \(row.valClassRecall), \(row.valMacroF1))
                ON CONFLICT (job_id, epoch) DO UPDATE SET
                    train_loss = excluded.train_loss, train_accuracy = excluded.train_accuracy, val_loss = excluded.val_loss,
                    val_accuracy = excluded.val_accuracy, lr = excluded.lr, grad_norm = excluded.grad_norm,
                    penalty = excluded.penalty, sparsity = excluded.sparsity, seconds = excluded.seconds,
                    samples_per_second = excluded.samples_per_second, d_loss = excluded.d_loss, g_loss = excluded.g_loss,
                    d_real = excluded.d_real, d_fake = excluded.d_fake, val_class_recall = excluded.val_class_recall,
                    val_macro_f1 = excluded.val_macro_f1
                """)
        }
    }

    public func metrics(jobId: String) throws -> [MetricsRow] {
        try query("SELECT * FROM metrics WHERE job_id = \(jobId) ORDER BY epoch").map(MetricsRow.init)
    }

    public func metrics(jobId: String, afterEpoch: Int) throws -> [MetricsRow] {
        try query("SELECT * FROM metrics WHERE job_id = \(jobId) AND epoch > \(afterEpoch) ORDER BY epoch").map(MetricsRow.init)
    }

    public func finishJob(
        id: String, status: JobStatus, errorCode: String?, errorMessage: String?,
        result: String?, bestEpoch: Int?, stoppedEarly: Bool
    ) throws {
        guard status.isFinished else { throw JobStoreError.wrongState("\(status.rawValue) is not a final status") }
        // The lease owner stays: it tells which node ran the job.
        let changed = try pool.withConnection { connection in
            try Self.changes("""
                UPDATE jobs
                SET status = \(status.rawValue), finished_at = \(Date()), error_code = \(errorCode), error_message = \(errorMessage),
                    result = \(result), best_epoch = \(bestEpoch), stopped_early = \(stoppedEarly), checkpoint_epoch = NULL,
                    progress = CASE WHEN \(status.rawValue) = 'succeeded' THEN 1 ELSE progress END, lease_expires_at = NULL
                WHERE id = \(id) AND status = 'running' AND lease_owner = \(nodeId)
                """, on: connection)
        }
        guard changed == 1 else { throw JobStoreError.wrongState("job \(id) is not running on node \(nodeId)") }
    }

    public func requestCancel(id: String, tenant: String) throws -> JobRecord? {
        try transaction { transaction in
            guard let row = try transaction.query("SELECT * FROM jobs WHERE id = \(id) AND tenant = \(tenant) FOR UPDATE").first else {
                return nil
            }
            let job = try JobRecord(row)
            switch job.status {
            case .queued:
                return try JobRecord(transaction.query("""
                    UPDATE jobs SET status = 'cancelled', finished_at = \(Date()) WHERE id = \(id) RETURNING *
                    """)[0])
            case .running:
                // The trainer, on whichever node, checks it between batches.
                return try JobRecord(transaction.query("UPDATE jobs SET cancel_requested = true WHERE id = \(id) RETURNING *")[0])
            case .succeeded, .failed, .cancelled:
                return job
            }
        }
    }

    public func rewindJob(id: String, toEpoch epoch: Int) throws {
        try transaction { transaction in
            try transaction.query("DELETE FROM metrics WHERE job_id = \(id) AND epoch > \(epoch)")
            try transaction.query("UPDATE jobs SET epoch = \(epoch) WHERE id = \(id) AND status = 'running' AND lease_owner = \(nodeId)")
        }
    }

    public func isCancelRequested(id: String) throws -> Bool {
        try query("SELECT cancel_requested FROM jobs WHERE id = \(id)").first?.value("cancel_requested") ?? false
    }

    /// At start-up, in a fleet: only the jobs this node itself left running (a restart under the same
    /// `--node-id`) and those whose lease expired; live nodes' jobs stay theirs.
    public func requeueInterruptedJobs() throws -> Int {
        Self.requeuedCount(try query("""
            UPDATE jobs
            SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                finished_at = CASE WHEN cancel_requested THEN now() END, lease_expires_at = NULL
            WHERE status = 'running' AND (lease_owner = \(nodeId) OR lease_expires_at < now())
            RETURNING status
            """))
    }

    public func renewLeases(jobIds: [String]) throws {
        guard !jobIds.isEmpty else { return }
        try query("""
            UPDATE jobs SET lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
            WHERE status = 'running' AND lease_owner = \(nodeId) AND id = ANY(\(jobIds))
            """)
    }

    /// Running jobs whose lease expired go back to the queue (a cancel request that can no longer
    /// reach a trainer is honored: cancelled).
    public func requeueExpiredLeases() throws -> Int {
        Self.requeuedCount(try query("""
            UPDATE jobs
            SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                finished_at = CASE WHEN cancel_requested THEN now() END, lease_expires_at = NULL
            WHERE status = 'running' AND lease_expires_at < now()
            RETURNING status
            """))
    }

    /// How many of the rows a requeueing `UPDATE … RETURNING status` changed went back to the queue.
    private static func requeuedCount(_ rows: [PostgresRandomAccessRow]) -> Int {
        rows.filter { (try? $0.value("status", as: String.self)) == "queued" }.count
    }

    public func requeueJob(id: String, countingAttempt: Bool) throws {
        let changed = try pool.withConnection { connection in
            try Self.changes("""
                UPDATE jobs
                SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                    finished_at = CASE WHEN cancel_requested THEN \(Date())::timestamptz END,
                    handed_back = handed_back + CASE WHEN \(countingAttempt) THEN 0 ELSE 1 END,
                    lease_expires_at = NULL
                WHERE id = \(id) AND status = 'running' AND lease_owner = \(nodeId)
                """, on: connection)
        }
        guard changed == 1 else { throw JobStoreError.wrongState("job \(id) is not running on node \(nodeId)") }
    }

    public func deleteJob(id: String, tenant: String) throws -> Bool {
        try transaction { transaction in
            guard let row = try transaction.query("SELECT status FROM jobs WHERE id = \(id) AND tenant = \(tenant) FOR UPDATE").first else {
                return false
            }
            let status = try row.value("status", as: String.self)
            guard JobStatus(rawValue: status)?.isFinished == true else { throw JobStoreError.wrongState("job \(id) is \(status)") }
            // A queued or running job that learns from this one's model (distillation.teacher_job, init.from_job).
            let quoted = "\"\(id)\""
            if let user = try transaction.query(
                "SELECT id FROM jobs WHERE status IN ('queued', 'running') AND strpos(spec, \(quoted)) > 0 LIMIT 1").first {
                throw JobStoreError.wrongState("job \(id)'s model is the teacher or starting point of \(try user.value("id", as: String.self)), which has not ended; delete it once that job ends")
            }
            return try transaction.changes("DELETE FROM jobs WHERE id = \(id)") == 1
        }
    }

    public func countJobsByStatus() throws -> [JobStatus: Int] {
        var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0, 0) })
        for row in try query("SELECT status, COUNT(*) AS count FROM jobs GROUP BY status") {
            if let status = JobStatus(rawValue: try row.value("status")) { counts[status] = try row.value("count", as: Int.self) }
        }
        return counts
    }

    public func activeJobCount(datasetId: String) throws -> Int {
        // Its data, or its validation or test set: a spec names those by id (quoted, as JSON writes it).
        let quoted = "\"\(datasetId)\""
        return try query("SELECT COUNT(*) AS count FROM jobs WHERE status IN ('queued', 'running') AND (dataset_id = \(datasetId) OR strpos(spec, \(quoted)) > 0)")[0]
            .value("count")
    }

    /// Which node claimed each job last (`lease_owner`), for the fleet's tests and bookkeeping.
    public func jobNodes() throws -> [String: String] {
        var nodes: [String: String] = [:]
        for row in try query("SELECT id, lease_owner FROM jobs WHERE lease_owner IS NOT NULL") {
            nodes[try row.value("id")] = try row.value("lease_owner", as: String.self)
        }
        return nodes
    }
}

extension ListCursor {
    /// A cursor of the PostgreSQL store: `created_at` in PostgreSQL's own text form (exact to the
    /// microsecond when cast back). Only what a timestamptz's text has is accepted, so a forged cursor
    /// is refused here, not by a failing cast.
    init(decodingTimestamp text: String) throws {
        try self.init(decoding: text)
        guard !createdAt.isEmpty, createdAt.allSatisfy({ "0123456789-:. +".contains($0) }), createdAt.first?.isNumber == true else {
            throw JobStoreError.invalidCursor(text)
        }
    }
}

// MARK: - Rows → records

extension JobRecord {
    init(_ row: PostgresRandomAccessRow) throws {
        self.init(
            id: try row.value("id"), tenant: try row.value("tenant"), name: try row.value("name"),
            status: JobStatus(rawValue: try row.value("status")) ?? .queued, priority: try row.value("priority"),
            datasetId: try row.value("dataset_id"), spec: try row.value("spec"), attempt: try row.value("attempt"),
            maxAttempts: try row.value("max_attempts"), epoch: try row.value("epoch"), epochs: try row.value("epochs"),
            progress: try row.value("progress"), latest: try row.value("latest"), bestEpoch: try row.value("best_epoch"),
            stoppedEarly: try row.value("stopped_early"), errorCode: try row.value("error_code"),
            errorMessage: try row.value("error_message"), result: try row.value("result"),
            cancelRequested: try row.value("cancel_requested"), idempotencyKey: try row.value("idempotency_key"),
            createdAt: try row.value("created_at"), startedAt: try row.value("started_at"), finishedAt: try row.value("finished_at"),
            studyId: try row.value("study_id"), studyParameters: try row.value("study_parameters"),
            checkpointEpoch: try row.value("checkpoint_epoch"), handedBack: try row.value("handed_back"))
    }
}

extension MetricsRow {
    init(_ row: PostgresRandomAccessRow) throws {
        self.init(
            jobId: try row.value("job_id"), epoch: try row.value("epoch"), trainLoss: try row.value("train_loss"),
            trainAccuracy: try row.value("train_accuracy"), valLoss: try row.value("val_loss"), valAccuracy: try row.value("val_accuracy"),
            lr: try row.value("lr"), gradNorm: try row.value("grad_norm"), penalty: try row.value("penalty"),
            sparsity: try row.value("sparsity"), seconds: try row.value("seconds"), samplesPerSecond: try row.value("samples_per_second"),
            dLoss: try row.value("d_loss"), gLoss: try row.value("g_loss"), dReal: try row.value("d_real"), dFake: try row.value("d_fake"),
            valClassRecall: try row.value("val_class_recall"), valMacroF1: try row.value("val_macro_f1"))
    }
}
