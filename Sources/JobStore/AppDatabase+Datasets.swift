import GRDB

extension AppDatabase: DatasetRepository {
    public func insertDataset(_ record: DatasetRecord, quota: DatasetQuota?) throws {
        try writer.write { db in
            // Checked in the inserting transaction: two racing uploads cannot both squeeze under the quota.
            if let quota {
                let usage = try Self.datasetUsage(db, tenant: record.tenant)
                if usage.count >= quota.maxDatasets { throw JobStoreError.tooManyDatasets(tenant: record.tenant, limit: quota.maxDatasets) }
                try Self.checkBytes(tenant: record.tenant, stored: usage.bytes, adding: record.bytes, quota: quota)
            }
            try record.insert(db)
        }
    }

    public func dataset(id: String) throws -> DatasetRecord? {
        try writer.read { db in try DatasetRecord.fetchOne(db, key: id) }
    }

    public func dataset(id: String, tenant: String) throws -> DatasetRecord? {
        try writer.read { db in try DatasetRecord.filter(key: id).filter(Column("tenant") == tenant).fetchOne(db) }
    }

    public func listDatasets(tenant: String) throws -> [DatasetRecord] {
        try writer.read { db in
            try DatasetRecord.filter(Column("tenant") == tenant).order(Column("created_at").desc, Column("id").desc).fetchAll(db)
        }
    }

    public func datasetUsage(tenant: String) throws -> (count: Int, bytes: Int) {
        try writer.read { db in try Self.datasetUsage(db, tenant: tenant) }
    }

    static func datasetUsage(_ db: Database, tenant: String) throws -> (count: Int, bytes: Int) {
        let row = try Row.fetchOne(db, sql: "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM datasets WHERE tenant = ?", arguments: [tenant])
        return (row?[0] ?? 0, row?[1] ?? 0)
    }

    static func checkBytes(tenant: String, stored: Int, adding: Int, quota: DatasetQuota) throws {
        if stored + adding > quota.maxBytes {
            throw JobStoreError.datasetBytesExceeded(tenant: tenant, stored: stored, adding: adding, limit: quota.maxBytes)
        }
    }

    public func deleteDataset(id: String, tenant: String) throws -> Bool {
        try writer.write { db in
            guard try DatasetRecord.filter(key: id).filter(Column("tenant") == tenant).fetchCount(db) == 1 else { return false }
            // Checked in the deleting transaction: no other writer can add a job in between.
            guard try Self.activeJobCount(db, datasetId: id) == 0 else {
                throw JobStoreError.datasetInUse(id)
            }
            return try DatasetRecord.deleteOne(db, key: id)
        }
    }

    public func attachLabels(
        datasetId: String, labelsFileName: String, labelsBytes: Int, task: String, classes: [String]?, quota: DatasetQuota?
    ) throws -> DatasetRecord? {
        try writer.write { db in
            guard var record = try DatasetRecord.fetchOne(db, key: datasetId) else { return nil }
            // Checked in the updating transaction: of two label uploads racing, one wins.
            try record.ensureWaitingForLabels()
            if let quota {
                try Self.checkBytes(tenant: record.tenant, stored: try Self.datasetUsage(db, tenant: record.tenant).bytes,
                                    adding: labelsBytes, quota: quota)
            }
            record.labelsFileName = labelsFileName
            record.bytes += labelsBytes
            record.task = task
            record.classes = classes
            try record.update(db)
            return try DatasetRecord.fetchOne(db, key: datasetId)
        }
    }
}
