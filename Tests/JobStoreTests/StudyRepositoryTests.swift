import Foundation
import Testing
@testable import JobStore

/// Whole seconds: the database keeps milliseconds, so the record reads back equal.
private func makeStudy(id: String = makeIdentifier(prefix: "st_"), name: String = "optimizers",
                       strategy: String = "grid", createdAt: TimeInterval = 1_700_000_000) -> StudyRecord {
    StudyRecord(
        id: id, name: name, spec: #"{"base":{"dataset":{"builtin":"moons"}},"parameters":{"optimizer.lr":[0.1,0.01]}}"#,
        strategy: strategy, objectiveMetric: "val_loss", objectiveMode: "min",
        createdAt: Date(timeIntervalSince1970: createdAt))
}

@Suite("StudyRepository")
struct StudyRepositoryTests {
    @Test("a study and its jobs are stored together; the jobs are queued, in order, with their parameters")
    func createStoresStudyAndJobs() throws {
        let database = try AppDatabase.inMemory()
        let study = makeStudy()
        let parameters = [#"{"optimizer.lr":0.1}"#, #"{"optimizer.lr":0.01}"#, #"{"optimizer.lr":0.001}"#]
        let (stored, jobs) = try database.createStudy(
            study, jobs: (1...3).map { makeNewJob(name: "optimizers #\($0)", priority: 1, epochs: 5) }, parameters: parameters)

        #expect(stored == study)
        #expect(jobs.map(\.name) == ["optimizers #1", "optimizers #2", "optimizers #3"])
        #expect(jobs.allSatisfy { $0.status == .queued && $0.studyId == study.id && $0.priority == 1 && $0.epochs == 5 })
        #expect(jobs.map(\.studyParameters) == parameters)
        #expect(Set(jobs.map(\.id)).count == 3)
        #expect(try database.study(id: study.id, tenant: Tenant.default) == study)
        #expect(try database.study(id: "st_unknown", tenant: Tenant.default) == nil)
        #expect(try database.jobs(studyId: study.id) == jobs)
        #expect(try database.jobs(studyId: "st_unknown") == [])
        // They are ordinary jobs: found by id, listed, claimed in the order given.
        #expect(try database.job(id: jobs[1].id) == jobs[1])
        #expect(try database.listJobs(tenant: Tenant.default, status: .queued, limit: 10, cursor: nil).jobs.count == 3)
        #expect(try database.claimNextJob()?.id == jobs[0].id)
        #expect(try database.claimNextJob()?.id == jobs[1].id)
    }

    @Test("a job created on its own belongs to no study")
    func plainJobHasNoStudy() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job
        #expect(job.studyId == nil && job.studyParameters == nil)
        #expect(try database.job(id: job.id)?.studyId == nil)
    }

    @Test("studies are listed newest first")
    func listNewestFirst() throws {
        let database = try AppDatabase.inMemory()
        let old = makeStudy(name: "old", createdAt: 1_700_000_000)
        let new = makeStudy(name: "new", createdAt: 1_700_000_100)
        let middle = makeStudy(name: "middle", createdAt: 1_700_000_050)
        for study in [old, new, middle] { _ = try database.createStudy(study, jobs: [], parameters: []) }
        #expect(try database.listStudies(tenant: Tenant.default).map(\.name) == ["new", "middle", "old"])
    }

    @Test("a failing job insert leaves neither the study nor any of its jobs behind")
    func createIsAtomic() throws {
        let database = try AppDatabase.inMemory()
        let study = makeStudy()
        // The third job's parameters are not a JSON object: the CHECK of 0002 refuses it.
        #expect(throws: (any Error).self) {
            try database.createStudy(study, jobs: (1...3).map { makeNewJob(name: "#\($0)") },
                                     parameters: [#"{"a":1}"#, #"{"a":2}"#, "[3]"])
        }
        #expect(try database.study(id: study.id, tenant: Tenant.default) == nil)
        #expect(try database.listStudies(tenant: Tenant.default) == [])
        #expect(try database.listJobs(tenant: Tenant.default, status: nil, limit: 10, cursor: nil).jobs == [])

        // The same id again is refused and changes nothing either.
        _ = try database.createStudy(study, jobs: [makeNewJob()], parameters: [#"{"a":1}"#])
        #expect(throws: (any Error).self) {
            try database.createStudy(study, jobs: [makeNewJob()], parameters: [#"{"a":1}"#])
        }
        #expect(try database.listJobs(tenant: Tenant.default, status: nil, limit: 10, cursor: nil).jobs.count == 1)
    }

    @Test("the schema checks a study's id, strategy, objective and request")
    func schemaChecksStudies() throws {
        let database = try AppDatabase.inMemory()
        let bad: [StudyRecord] = [
            { var s = makeStudy(); s.id = "job_123"; return s }(),
            { var s = makeStudy(); s.name = ""; return s }(),
            { var s = makeStudy(); s.spec = "not json"; return s }(),
            { var s = makeStudy(); s.spec = "[1]"; return s }(),
            { var s = makeStudy(); s.strategy = "bayesian"; return s }(),
            { var s = makeStudy(); s.objectiveMetric = "test_loss"; return s }(),
            { var s = makeStudy(); s.objectiveMode = "maximize"; return s }(),
        ]
        for study in bad {
            let error = #expect(throws: (any Error).self, "\(study)") {
                try database.createStudy(study, jobs: [], parameters: [])
            }
            #expect(String(describing: error).contains("CHECK constraint failed"), "\(String(describing: error))")
        }
        #expect(try database.listStudies(tenant: Tenant.default) == [])
    }

    @Test("a job can only point to a study that exists, and then has its parameters")
    func foreignKeyAndParametersCheck() throws {
        let database = try AppDatabase.inMemory()
        let missing = #expect(throws: (any Error).self) {
            try database.execute(sql: """
                INSERT INTO jobs (id, dataset_id, spec, epochs, created_at, study_id, study_parameters)
                VALUES ('job_orphan', 'builtin:xor', '{}', 1, '2025-01-01 00:00:00.000', 'st_missing', '{}')
                """)
        }
        #expect(String(describing: missing).contains("FOREIGN KEY constraint failed"))

        let study = makeStudy()
        _ = try database.createStudy(study, jobs: [], parameters: [])
        let withoutParameters = #expect(throws: (any Error).self) {
            try database.execute(sql: """
                INSERT INTO jobs (id, dataset_id, spec, epochs, created_at, study_id)
                VALUES ('job_bare', 'builtin:xor', '{}', 1, '2025-01-01 00:00:00.000', '\(study.id)')
                """)
        }
        #expect(String(describing: withoutParameters).contains("CHECK constraint failed"))
    }

    @Test("deleting a study keeps its jobs, which become ordinary jobs with their parameters")
    func deletingStudyKeepsJobs() throws {
        let database = try AppDatabase.inMemory()
        let study = makeStudy()
        let (_, jobs) = try database.createStudy(study, jobs: [makeNewJob(), makeNewJob()],
                                                 parameters: [#"{"optimizer.lr":0.1}"#, #"{"optimizer.lr":0.01}"#])
        try database.execute(sql: "DELETE FROM studies WHERE id = '\(study.id)'")

        #expect(try database.study(id: study.id, tenant: Tenant.default) == nil)
        #expect(try database.jobs(studyId: study.id) == [])
        for job in jobs {
            let kept = try #require(try database.job(id: job.id))
            #expect(kept.studyId == nil)
            #expect(kept.studyParameters == job.studyParameters)
        }
    }

    @Test("deleting a job of a study removes it from the study only")
    func deletingJobLeavesStudy() throws {
        let database = try AppDatabase.inMemory()
        let study = makeStudy()
        let (_, jobs) = try database.createStudy(study, jobs: [makeNewJob(), makeNewJob()], parameters: ["{}", "{}"])
        _ = try database.requestCancel(id: jobs[0].id, tenant: Tenant.default)
        #expect(try database.deleteJob(id: jobs[0].id, tenant: Tenant.default))
        #expect(try database.study(id: study.id, tenant: Tenant.default) == study)
        #expect(try database.jobs(studyId: study.id).map(\.id) == [jobs[1].id])
    }

    @Test("migration 0002 is recorded once and adds the studies table and the job columns")
    func migrationRecordedOnce() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let first = try AppDatabase.open(path: path)
            // Later migrations (0003 …) run too; 0002 is recorded once, after 0001.
            #expect(Array(try first.appliedMigrations().prefix(2)) == ["0001_initial.sql", "0002_studies.sql"])
            let (study, jobs) = try first.createStudy(makeStudy(), jobs: [makeNewJob()], parameters: [#"{"a":1}"#])

            // Opening again runs nothing twice (re-running 0002 would fail: "duplicate column name").
            let second = try AppDatabase.open(path: path)
            #expect(try second.strings(sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")
                    == (try first.appliedMigrations()))
            #expect(try second.study(id: study.id, tenant: Tenant.default) == study)
            #expect(try second.jobs(studyId: study.id) == jobs)

            let columns = try second.strings(sql: "SELECT name FROM pragma_table_info('jobs')")
            #expect(columns.contains("study_id") && columns.contains("study_parameters"))
        }
    }

    @Test("a database migrated by 0001 alone keeps its jobs through 0002")
    func upgradeFromFirstMigration() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            // The state of a server that ran before studies existed: 0001 only, and one job.
            do {
                let old = try AppDatabase.open(path: path, upTo: "0001_initial.sql")
                #expect(try old.appliedMigrations() == ["0001_initial.sql"])
                try old.execute(sql: """
                    INSERT INTO jobs (id, dataset_id, spec, epochs, created_at)
                    VALUES ('job_old', 'builtin:xor', '{}', 3, '2025-01-01 00:00:00.000')
                    """)
            }
            let database = try AppDatabase.open(path: path)
            #expect(Array(try database.appliedMigrations().prefix(2)) == ["0001_initial.sql", "0002_studies.sql"])
            let old = try #require(try database.job(id: "job_old"))
            #expect(old.studyId == nil && old.studyParameters == nil && old.epochs == 3)
        }
    }

    @Test("a study's jobs are read through the jobs_study index, with no sorting step")
    func studyJobsUseIndex() throws {
        let database = try AppDatabase.inMemory()
        let plan = try database.queryPlan(sql: AppDatabase.studyJobsSQL.replacingOccurrences(of: "?", with: "'st_x'"))
        #expect(plan.contains { $0.contains("jobs_study") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
    }
}
