import Foundation
import PostgresNIO

// Datasets, studies, tokens and webhook deliveries in PostgreSQL, with `AppDatabase`'s semantics.

extension PostgresStore: DatasetRepository {
    public func insertDataset(_ record: DatasetRecord, quota: DatasetQuota?) throws {
        try transaction { transaction in
            // The tenant's lock: two racing uploads (on any nodes) cannot both squeeze under the quota.
            try transaction.lock("tenant:\(record.tenant)")
            if let quota {
                let usage = try Self.datasetUsage(transaction, tenant: record.tenant)
                if usage.count >= quota.maxDatasets { throw JobStoreError.tooManyDatasets(tenant: record.tenant, limit: quota.maxDatasets) }
                try AppDatabase.checkBytes(tenant: record.tenant, stored: usage.bytes, adding: record.bytes, quota: quota)
            }
            try transaction.query("""
                INSERT INTO datasets (id, tenant, name, format, rows, features, feature_names, target, task, classes, shape, bytes,
                                      file_name, created_at, labels_file_name)
                VALUES (\(record.id), \(record.tenant), \(record.name), \(record.format), \(record.rows), \(record.features),
                        \(try jsonText(record.featureNames)), \(record.target), \(record.task), \(try record.classes.map(jsonText)),
                        \(try jsonText(record.shape)), \(record.bytes), \(record.fileName), \(record.createdAt), \(record.labelsFileName))
                """)
        }
    }

    public func dataset(id: String) throws -> DatasetRecord? {
        try query("SELECT * FROM datasets WHERE id = \(id)").first.map(DatasetRecord.init)
    }

    public func dataset(id: String, tenant: String) throws -> DatasetRecord? {
        try query("SELECT * FROM datasets WHERE id = \(id) AND tenant = \(tenant)").first.map(DatasetRecord.init)
    }

    public func listDatasets(tenant: String) throws -> [DatasetRecord] {
        try query("SELECT * FROM datasets WHERE tenant = \(tenant) ORDER BY created_at DESC, id DESC").map(DatasetRecord.init)
    }

    public func datasetUsage(tenant: String) throws -> (count: Int, bytes: Int) {
        try pool.withConnection { connection in try Self.datasetUsage(PostgresTransaction(connection: connection), tenant: tenant) }
    }

    static func datasetUsage(_ transaction: PostgresTransaction, tenant: String) throws -> (count: Int, bytes: Int) {
        let row = try transaction.query(
            "SELECT COUNT(*) AS count, COALESCE(SUM(bytes), 0)::bigint AS bytes FROM datasets WHERE tenant = \(tenant)")[0]
        return (try row.value("count"), try row.value("bytes"))
    }

    public func deleteDataset(id: String, tenant: String) throws -> Bool {
        try transaction { transaction in
            // The tenant's lock keeps its job submissions out until this commits (the new job's dataset
            // would be gone). Jobs of other tenants cannot name this dataset.
            try transaction.lock("tenant:\(tenant)")
            guard try transaction.query("SELECT id FROM datasets WHERE id = \(id) AND tenant = \(tenant) FOR UPDATE").first != nil else {
                return false
            }
            let quoted = "\"\(id)\""
            let active = try transaction.query(
                "SELECT COUNT(*) AS count FROM jobs WHERE status IN ('queued', 'running') AND (dataset_id = \(id) OR strpos(spec, \(quoted)) > 0)")[0]
                .value("count", as: Int.self)
            guard active == 0 else { throw JobStoreError.datasetInUse(id) }
            return try transaction.changes("DELETE FROM datasets WHERE id = \(id)") == 1
        }
    }

    public func attachLabels(
        datasetId: String, labelsFileName: String, labelsBytes: Int, task: String, classes: [String]?, quota: DatasetQuota?
    ) throws -> DatasetRecord? {
        try transaction { transaction in
            guard let tenantRow = try transaction.query("SELECT tenant FROM datasets WHERE id = \(datasetId)").first else { return nil }
            try transaction.lock("tenant:\(try tenantRow.value("tenant", as: String.self))")
            guard let row = try transaction.query("SELECT * FROM datasets WHERE id = \(datasetId) FOR UPDATE").first else { return nil }
            let record = try DatasetRecord(row)
            try record.ensureWaitingForLabels()
            if let quota {
                try AppDatabase.checkBytes(tenant: record.tenant, stored: try Self.datasetUsage(transaction, tenant: record.tenant).bytes,
                                           adding: labelsBytes, quota: quota)
            }
            return try DatasetRecord(transaction.query("""
                UPDATE datasets SET labels_file_name = \(labelsFileName), bytes = bytes + \(labelsBytes), task = \(task),
                    classes = \(try classes.map(jsonText))
                WHERE id = \(datasetId) RETURNING *
                """)[0])
        }
    }
}

extension PostgresStore: StudyRepository {
    public func createStudy(_ study: StudyRecord, jobs: [NewJob], parameters: [String], limits: TenantLimits) throws
        -> (study: StudyRecord, jobs: [JobRecord])
    {
        precondition(jobs.count == parameters.count, "one parameters object per job")
        return try transaction { transaction in
            try transaction.lock("tenant:\(study.tenant)")
            try Self.checkTenantLimits(transaction, tenant: study.tenant, adding: jobs, limits: limits)
            let stored = try StudyRecord(transaction.query("""
                INSERT INTO studies (id, tenant, name, spec, strategy, objective_metric, objective_mode, created_at)
                VALUES (\(study.id), \(study.tenant), \(study.name), \(study.spec), \(study.strategy), \(study.objectiveMetric),
                        \(study.objectiveMode), \(study.createdAt))
                RETURNING *
                """)[0])
            let now = Date()
            let records = try zip(jobs, parameters).map { new, values in
                var new = new
                new.tenant = stored.tenant
                return try Self.insertJob(transaction, new, id: makeIdentifier(prefix: "job_"), createdAt: now, idempotencyKey: nil,
                                          studyId: stored.id, studyParameters: values)
            }
            return (stored, records)
        }
    }

    public func study(id: String, tenant: String) throws -> StudyRecord? {
        try query("SELECT * FROM studies WHERE id = \(id) AND tenant = \(tenant)").first.map(StudyRecord.init)
    }

    public func listStudies(tenant: String) throws -> [StudyRecord] {
        try query("SELECT * FROM studies WHERE tenant = \(tenant) ORDER BY created_at DESC, id DESC").map(StudyRecord.init)
    }

    public func jobs(studyId: String) throws -> [JobRecord] {
        try query("SELECT * FROM jobs WHERE study_id = \(studyId) ORDER BY seq").map(JobRecord.init)
    }
}

extension PostgresStore: TokenRepository {
    public func createToken(tenant: String) throws -> (record: TokenRecord, token: String) {
        guard Tenant.isValidName(tenant) else { throw JobStoreError.invalidTenantName(tenant) }
        let token = AccessToken.generate()
        let new = TokenRecord(tenant: tenant, tokenHash: AccessToken.hash(token))
        let record = try TokenRecord(query("""
            INSERT INTO tokens (id, tenant, token_hash, created_at) VALUES (\(new.id), \(new.tenant), \(new.tokenHash), \(new.createdAt))
            RETURNING *
            """)[0])
        return (record, token)
    }

    public func tenant(authenticatedBy token: String) throws -> String? {
        try query("SELECT tenant FROM tokens WHERE token_hash = \(AccessToken.hash(token)) AND revoked_at IS NULL").first?.value("tenant")
    }

    public func listTokens() throws -> [TokenRecord] {
        try query("SELECT * FROM tokens ORDER BY created_at, id").map(TokenRecord.init)
    }

    public func revokeToken(id: String) throws -> TokenRecord? {
        try transaction { transaction in
            try transaction.query("UPDATE tokens SET revoked_at = \(Date()) WHERE id = \(id) AND revoked_at IS NULL")
            return try transaction.query("SELECT * FROM tokens WHERE id = \(id)").first.map(TokenRecord.init)
        }
    }
}

extension PostgresStore: WebhookDeliveryRepository {
    public func recordDelivery(_ delivery: WebhookDelivery) throws {
        // A job deleted meanwhile makes this a no-op (no row to refer to).
        try query("""
            INSERT INTO webhook_deliveries (job_id, event, url, attempt, status_code, error, delivered, duration_ms, attempted_at)
            SELECT \(delivery.jobId), \(delivery.event), \(delivery.url), \(delivery.attempt), \(delivery.statusCode), \(delivery.error),
                   \(delivery.delivered), \(delivery.durationMs), \(delivery.attemptedAt)
            WHERE EXISTS (SELECT 1 FROM jobs WHERE id = \(delivery.jobId))
            """)
    }

    public func deliveries(jobId: String) throws -> [WebhookDelivery] {
        try query("SELECT * FROM webhook_deliveries WHERE job_id = \(jobId) ORDER BY id").map { row in
            var delivery = WebhookDelivery(
                jobId: try row.value("job_id"), event: try row.value("event"), url: try row.value("url"), attempt: try row.value("attempt"),
                statusCode: try row.value("status_code"), error: try row.value("error"), delivered: try row.value("delivered"),
                durationMs: try row.value("duration_ms"), attemptedAt: try row.value("attempted_at"))
            delivery.id = try row.value("id")
            return delivery
        }
    }

    public func rotateWebhookSecret(tenant: String, keepingPrevious: TimeInterval, now: Date) throws -> String {
        guard Tenant.isValidName(tenant) else { throw JobStoreError.invalidTenantName(tenant) }
        let secret = WebhookSecret.generate()
        let expires = now.addingTimeInterval(max(0, keepingPrevious))
        let keeps = keepingPrevious > 0
        try query("""
            INSERT INTO webhook_secrets (tenant, secret, created_at) VALUES (\(tenant), \(secret), \(now))
            ON CONFLICT (tenant) DO UPDATE SET
                secret = EXCLUDED.secret, created_at = EXCLUDED.created_at,
                previous_secret = CASE WHEN \(keeps) THEN webhook_secrets.secret END,
                previous_expires_at = CASE WHEN \(keeps) THEN \(expires)::timestamptz END
            """)
        return secret
    }

    public func webhookSecrets(tenant: String, now: Date) throws -> [String] {
        guard let row = try query("SELECT * FROM webhook_secrets WHERE tenant = \(tenant)").first else { return [] }
        return WebhookSecretRow(tenant: try row.value("tenant"), secret: try row.value("secret"), createdAt: try row.value("created_at"),
                                previousSecret: try row.value("previous_secret"), previousExpiresAt: try row.value("previous_expires_at"))
            .secrets(at: now)
    }

    public func removeWebhookSecret(tenant: String) throws -> Bool {
        !(try query("DELETE FROM webhook_secrets WHERE tenant = \(tenant) RETURNING tenant")).isEmpty
    }

    public func listWebhookSecrets() throws -> [(tenant: String, createdAt: Date)] {
        try query("SELECT tenant, created_at FROM webhook_secrets ORDER BY tenant").map { (try $0.value("tenant"), try $0.value("created_at")) }
    }
}

// MARK: - Rows → records

extension DatasetRecord {
    init(_ row: PostgresRandomAccessRow) throws {
        self.init(
            id: try row.value("id"), tenant: try row.value("tenant"), name: try row.value("name"), format: try row.value("format"),
            rows: try row.value("rows"), features: try row.value("features"), featureNames: try row.json("feature_names"),
            target: try row.value("target"), task: try row.value("task"), classes: try row.optionalJSON("classes"),
            shape: try row.json("shape"), bytes: try row.value("bytes"), fileName: try row.value("file_name"),
            createdAt: try row.value("created_at"), labelsFileName: try row.value("labels_file_name"))
    }
}

extension StudyRecord {
    init(_ row: PostgresRandomAccessRow) throws {
        self.init(
            id: try row.value("id"), tenant: try row.value("tenant"), name: try row.value("name"), spec: try row.value("spec"),
            strategy: try row.value("strategy"), objectiveMetric: try row.value("objective_metric"),
            objectiveMode: try row.value("objective_mode"), createdAt: try row.value("created_at"))
    }
}

extension TokenRecord {
    init(_ row: PostgresRandomAccessRow) throws {
        self.init(id: try row.value("id"), tenant: try row.value("tenant"), tokenHash: try row.value("token_hash"),
                  createdAt: try row.value("created_at"), revokedAt: try row.value("revoked_at"))
    }
}
