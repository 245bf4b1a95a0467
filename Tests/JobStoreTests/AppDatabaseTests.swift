import Foundation
import Testing
@testable import JobStore

@Suite("AppDatabase")
struct AppDatabaseTests {
    @Test("migrations come from the bundled Migrations folder, sorted by file name")
    func migrationFilesAreBundled() throws {
        let names = try AppDatabase.migrationFiles().map(\.lastPathComponent)
        #expect(names.first == "0001_initial.sql")
        #expect(names == names.sorted())
    }

    @Test("migrations run once and are recorded under their file names")
    func migrationsRunOnce() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let expected = try AppDatabase.migrationFiles().map(\.lastPathComponent)

            let first = try AppDatabase.open(path: path)
            let job = try first.createJob(makeNewJob()).job
            #expect(try first.appliedMigrations() == expected)

            // Re-running 0001 would fail ("table jobs already exists") or lose the job.
            let second = try AppDatabase.open(path: path)
            #expect(try second.job(id: job.id) == job)
            #expect(try second.strings(sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") == expected)
        }
    }

    @Test("a file database is in WAL mode, in a folder created on demand")
    func fileDatabaseUsesWAL() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("data/nested/descent.sqlite").path
            let database = try AppDatabase.open(path: path)
            #expect(try database.strings(sql: "PRAGMA journal_mode") == ["wal"])
            #expect(FileManager.default.fileExists(atPath: path))
        }
    }

    @Test("an in-memory database has the whole schema")
    func inMemoryDatabaseIsMigrated() throws {
        let database = try AppDatabase.inMemory()
        let tables = try database.strings(sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        #expect(tables.contains("jobs") && tables.contains("datasets") && tables.contains("metrics"))
        #expect(try database.appliedMigrations().first == "0001_initial.sql")
    }

    @Test("foreign keys are enforced")
    func foreignKeysAreOn() throws {
        let database = try AppDatabase.inMemory()
        #expect(try database.strings(sql: "PRAGMA foreign_keys") == ["1"])
        let error = #expect(throws: (any Error).self) {
            try database.execute(sql: """
                INSERT INTO metrics (job_id, epoch, train_loss, lr, grad_norm, penalty, sparsity, seconds, samples_per_second)
                VALUES ('job_missing', 1, 0.5, 0.1, 1, 0, 0, 1, 100)
                """)
        }
        #expect(String(describing: error).contains("FOREIGN KEY constraint failed"))
    }

    @Test("the schema rejects a job with a bogus status")
    func checkConstraintRejectsBogusStatus() throws {
        let database = try AppDatabase.inMemory()
        let error = #expect(throws: (any Error).self) {
            try database.execute(sql: """
                INSERT INTO jobs (id, status, dataset_id, spec, epochs, created_at)
                VALUES ('job_bogus', 'paused', 'builtin:xor', '{}', 1, '2025-01-01 00:00:00.000')
                """)
        }
        #expect(String(describing: error).contains("CHECK constraint failed"))
    }

    @Test("the schema rejects a finished job without a finish time")
    func checkConstraintTiesFinishTimeToStatus() throws {
        let database = try AppDatabase.inMemory()
        #expect(throws: (any Error).self) {
            try database.execute(sql: """
                INSERT INTO jobs (id, status, dataset_id, spec, epochs, created_at)
                VALUES ('job_done', 'succeeded', 'builtin:xor', '{}', 1, '2025-01-01 00:00:00.000')
                """)
        }
    }

    @Test("the claim query is served by the queue index, with no sorting step")
    func claimUsesQueueIndex() throws {
        let database = try AppDatabase.inMemory()
        let plan = try database.queryPlan(sql: AppDatabase.nextQueuedJobSQL)
        #expect(plan.contains { $0.contains("jobs_queue") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
    }
}

@Suite("makeIdentifier")
struct MakeIdentifierTests {
    @Test("identifiers are the prefix and 20 random lowercase letters and digits")
    func identifierShape() {
        let id = makeIdentifier(prefix: "job_")
        #expect(id.hasPrefix("job_"))
        let suffix = id.dropFirst(4)
        #expect(suffix.count == 20)
        #expect(suffix.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber) })
        #expect(makeIdentifier(prefix: "ds_") != makeIdentifier(prefix: "ds_"))
    }
}
