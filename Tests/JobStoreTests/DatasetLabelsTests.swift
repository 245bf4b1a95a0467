import Foundation
import Testing
@testable import JobStore

/// IDX or NPY images uploaded without labels, which a second upload (`labels_of`) completes.
func makeUnlabeledImages(id: String = makeIdentifier(prefix: "ds_"), format: String = "idx") -> DatasetRecord {
    DatasetRecord(
        id: id, name: "mnist", format: format, rows: 60000, features: 784, featureNames: (0..<784).map { "x\($0)" },
        target: nil, task: DatasetRecord.unlabeledTask, classes: nil, shape: [1, 28, 28], bytes: 9_912_422,
        fileName: "\(id).\(format).gz", createdAt: Date(timeIntervalSince1970: 1_700_000_000))
}

@Suite("Dataset labels (migration 0003)")
struct DatasetLabelsTests {
    @Test("unlabeled images read back as inserted, then attaching labels gives them a task, classes and a labels file")
    func attachLabels() throws {
        let database = try AppDatabase.inMemory()
        let images = makeUnlabeledImages()
        try database.insertDataset(images)
        #expect(try database.dataset(id: images.id) == images)
        #expect(try database.dataset(id: images.id)?.isUnlabeled == true)

        let labelled = try #require(try database.attachLabels(
            datasetId: images.id, labelsFileName: "\(images.id).labels-x.idx.gz", labelsBytes: 28_881,
            task: "classification", classes: (0...9).map(String.init)))
        #expect(labelled.task == "classification" && !labelled.isUnlabeled)
        #expect(labelled.classes == (0...9).map(String.init))
        #expect(labelled.labelsFileName == "\(images.id).labels-x.idx.gz")
        #expect(labelled.bytes == 9_912_422 + 28_881)
        #expect(labelled.rows == images.rows && labelled.fileName == images.fileName && labelled.createdAt == images.createdAt)
        #expect(try database.dataset(id: images.id) == labelled)
    }

    @Test("labels attach once; a dataset that has targets, or none at all, refuses them")
    func attachOnce() throws {
        let database = try AppDatabase.inMemory()
        let images = makeUnlabeledImages()
        try database.insertDataset(images)
        _ = try database.attachLabels(datasetId: images.id, labelsFileName: "a.idx", labelsBytes: 1, task: "classification", classes: ["0"])
        #expect(throws: JobStoreError.wrongState("dataset \(images.id) already has labels")) {
            try database.attachLabels(datasetId: images.id, labelsFileName: "b.idx", labelsBytes: 1, task: "classification", classes: ["1"])
        }
        #expect(try database.dataset(id: images.id)?.labelsFileName == "a.idx")

        let csv = makeDataset()
        try database.insertDataset(csv)
        #expect(throws: JobStoreError.self) {
            try database.attachLabels(datasetId: csv.id, labelsFileName: "c.idx", labelsBytes: 1, task: "classification", classes: ["1"])
        }
        #expect(try database.attachLabels(datasetId: "ds_unknown", labelsFileName: "d.idx", labelsBytes: 1, task: "regression", classes: nil) == nil)
    }

    @Test("the schema keeps 'unlabeled' to IDX and NPY data without classes or labels file")
    func schemaChecks() throws {
        let database = try AppDatabase.inMemory()
        var csv = makeDataset()
        csv.task = DatasetRecord.unlabeledTask
        csv.classes = nil
        #expect(throws: (any Error).self) { try database.insertDataset(csv) }

        var withClasses = makeUnlabeledImages()
        withClasses.classes = ["0", "1"]
        #expect(throws: (any Error).self) { try database.insertDataset(withClasses) }

        var csvWithLabelsFile = makeDataset()
        csvWithLabelsFile.labelsFileName = "x.idx"
        #expect(throws: (any Error).self) { try database.insertDataset(csvWithLabelsFile) }

        var clustering = makeUnlabeledImages(format: "npy")
        clustering.task = "clustering"
        #expect(throws: (any Error).self) { try database.insertDataset(clustering) }
    }

    @Test("a database from before 0003 keeps its datasets, which have no labels file")
    func upgradeKeepsDatasets() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let digits = makeDataset()
            do {
                let old = try AppDatabase.open(path: path, upTo: "0002_studies.sql")
                #expect(try old.appliedMigrations().last == "0002_studies.sql")
                try old.execute(sql: """
                    INSERT INTO datasets (id, name, format, rows, features, feature_names, target, task, classes, shape, bytes, file_name, created_at)
                    VALUES ('\(digits.id)', 'digits', 'csv', 1797, 64, '[]', 'label', 'classification', '["0","1"]', '[64]', 10, '\(digits.id).csv',
                            '2023-11-14 22:13:20.000')
                    """)
                try old.execute(sql: """
                    INSERT INTO jobs (id, dataset_id, spec, epochs, created_at)
                    VALUES ('job_old', '\(digits.id)', '{}', 3, '2025-01-01 00:00:00.000')
                    """)
            }
            let database = try AppDatabase.open(path: path)
            #expect(try database.appliedMigrations().contains("0003_dataset_labels.sql"))
            let stored = try #require(try database.dataset(id: digits.id))
            #expect(stored.task == "classification" && stored.classes == ["0", "1"] && stored.shape == [64])
            #expect(stored.labelsFileName == nil && stored.createdAt == Date(timeIntervalSince1970: 1_700_000_000))
            #expect(try database.job(id: "job_old")?.datasetId == digits.id)
            // Still refused while a queued job uses it, as before the rebuild.
            #expect(throws: JobStoreError.datasetInUse(digits.id)) { try database.deleteDataset(id: digits.id, tenant: Tenant.default) }
            let columns = try database.strings(sql: "SELECT name FROM pragma_table_info('datasets')")
            #expect(columns.contains("labels_file_name"))
        }
    }
}
