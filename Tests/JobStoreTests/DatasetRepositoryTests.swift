import Foundation
import Testing
@testable import JobStore

@Suite("DatasetRepository")
struct DatasetRepositoryTests {
    @Test("a dataset reads back as it was inserted, lists included")
    func insertAndFind() throws {
        let database = try AppDatabase.inMemory()
        let digits = makeDataset()
        var regression = makeDataset()
        regression.task = "regression"
        regression.target = nil
        regression.classes = nil
        try database.insertDataset(digits)
        try database.insertDataset(regression)

        #expect(try database.dataset(id: digits.id) == digits)
        #expect(try database.dataset(id: regression.id) == regression)
        #expect(try database.dataset(id: "ds_unknown") == nil)
        // Array properties are JSON text in the database.
        #expect(try database.strings(sql: "SELECT shape FROM datasets WHERE id = '\(digits.id)'") == ["[1797,64]"])
    }

    @Test("datasets are listed newest first")
    func listNewestFirst() throws {
        let database = try AppDatabase.inMemory()
        let old = makeDataset(createdAt: 1_700_000_000)
        let new = makeDataset(createdAt: 1_700_000_100)
        let middle = makeDataset(createdAt: 1_700_000_050)
        for dataset in [old, new, middle] { try database.insertDataset(dataset) }

        #expect(try database.listDatasets(tenant: Tenant.default).map(\.id) == [new.id, middle.id, old.id])
    }

    @Test("the schema rejects an unknown task")
    func unknownTaskIsRejected() throws {
        let database = try AppDatabase.inMemory()
        var dataset = makeDataset()
        dataset.task = "clustering"
        #expect(throws: (any Error).self) { try database.insertDataset(dataset) }
    }

    @Test("a dataset used by a queued or running job cannot be deleted")
    func datasetInUse() throws {
        let database = try AppDatabase.inMemory()
        let dataset = makeDataset()
        try database.insertDataset(dataset)
        let job = try database.createJob(makeNewJob(datasetId: dataset.id)).job

        #expect(throws: JobStoreError.datasetInUse(dataset.id)) { try database.deleteDataset(id: dataset.id, tenant: Tenant.default) }
        _ = try database.claimNextJob()
        #expect(throws: JobStoreError.datasetInUse(dataset.id)) { try database.deleteDataset(id: dataset.id, tenant: Tenant.default) }

        try database.finishJob(id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil,
                               result: nil, bestEpoch: nil, stoppedEarly: false)
        #expect(try database.deleteDataset(id: dataset.id, tenant: Tenant.default))
        #expect(try database.dataset(id: dataset.id) == nil)
    }

    @Test("deleting an unknown dataset returns false")
    func deleteUnknown() throws {
        let database = try AppDatabase.inMemory()
        #expect(try !database.deleteDataset(id: "ds_unknown", tenant: Tenant.default))
    }
}
