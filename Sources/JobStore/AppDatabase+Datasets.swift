import GRDB

extension AppDatabase: DatasetRepository {
    public func insertDataset(_ record: DatasetRecord) throws {
        try writer.write { db in try record.insert(db) }
    }

    public func dataset(id: String) throws -> DatasetRecord? {
        try writer.read { db in try DatasetRecord.fetchOne(db, key: id) }
    }

    public func listDatasets() throws -> [DatasetRecord] {
        try writer.read { db in
            try DatasetRecord.order(Column("created_at").desc, Column("id").desc).fetchAll(db)
        }
    }

    public func deleteDataset(id: String) throws -> Bool {
        try writer.write { db in
            guard try DatasetRecord.exists(db, key: id) else { return false }
            // Checked in the deleting transaction: no other writer can add a job in between.
            guard try Self.activeJobCount(db, datasetId: id) == 0 else {
                throw JobStoreError.datasetInUse(id)
            }
            return try DatasetRecord.deleteOne(db, key: id)
        }
    }

    public func attachLabels(
        datasetId: String, labelsFileName: String, labelsBytes: Int, task: String, classes: [String]?
    ) throws -> DatasetRecord? {
        try writer.write { db in
            guard var record = try DatasetRecord.fetchOne(db, key: datasetId) else { return nil }
            // Checked in the updating transaction: of two label uploads racing, one wins.
            guard record.isUnlabeled else {
                throw JobStoreError.wrongState(record.labelsFileName == nil
                    ? "dataset \(datasetId) is not waiting for labels: its targets came with its data"
                    : "dataset \(datasetId) already has labels")
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
