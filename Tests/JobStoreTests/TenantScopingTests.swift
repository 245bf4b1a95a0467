import Foundation
import Testing
@testable import JobStore

private func makeJob(tenant: String, name: String? = nil, idempotencyKey: String? = nil) -> NewJob {
    var job = makeNewJob(name: name, idempotencyKey: idempotencyKey)
    job.tenant = tenant
    return job
}

@Suite("Tenant scoping (migration 0006)")
struct TenantScopingTests {
    @Test("a tenant finds, lists, cancels and deletes only its own jobs")
    func jobsAreScoped() throws {
        let database = try AppDatabase.inMemory()
        let acme = try database.createJob(makeJob(tenant: "acme")).job
        let globex = try database.createJob(makeJob(tenant: "globex")).job
        #expect(acme.tenant == "acme" && globex.tenant == "globex")

        #expect(try database.job(id: acme.id, tenant: "acme") == acme)
        #expect(try database.job(id: acme.id, tenant: "globex") == nil)
        #expect(try database.job(id: acme.id) == acme, "the worker pool sees every tenant's job")
        #expect(try database.listJobs(tenant: "acme", status: nil, limit: 10, cursor: nil).jobs.map(\.id) == [acme.id])
        #expect(try database.listJobs(tenant: "globex", status: .queued, limit: 10, cursor: nil).jobs.map(\.id) == [globex.id])
        #expect(try database.listJobs(tenant: Tenant.default, status: nil, limit: 10, cursor: nil).jobs.isEmpty)

        #expect(try database.requestCancel(id: acme.id, tenant: "globex") == nil)
        #expect(try database.job(id: acme.id)?.status == .queued, "another tenant's cancel changes nothing")
        #expect(try database.requestCancel(id: acme.id, tenant: "acme")?.status == .cancelled)
        #expect(try !database.deleteJob(id: acme.id, tenant: "globex"))
        #expect(try database.deleteJob(id: acme.id, tenant: "acme"))
    }

    @Test("idempotency keys are per tenant: the same key gives each tenant its own job")
    func idempotencyKeysArePerTenant() throws {
        let database = try AppDatabase.inMemory()
        let acme = try database.createJob(makeJob(tenant: "acme", idempotencyKey: "retry-1"))
        let globex = try database.createJob(makeJob(tenant: "globex", idempotencyKey: "retry-1"))
        let acmeRetry = try database.createJob(makeJob(tenant: "acme", idempotencyKey: "retry-1"))

        #expect(acme.created && globex.created && !acmeRetry.created)
        #expect(globex.job.id != acme.job.id && globex.job.tenant == "globex")
        #expect(acmeRetry.job == acme.job)
    }

    @Test("the limit counts a tenant's queued and running jobs, a study's included, and no one else's")
    func activeJobLimitIsPerTenant() throws {
        let database = try AppDatabase.inMemory()
        _ = try database.createJob(makeJob(tenant: "acme"), activeJobLimit: 3)
        _ = try database.createJob(makeJob(tenant: "acme"), activeJobLimit: 3)
        _ = try database.claimNextJob()  // running counts too
        #expect(throws: JobStoreError.tooManyActiveJobs(tenant: "acme", active: 2, adding: 2, limit: 3)) {
            try database.createStudy(StudyRecord(tenant: "acme", name: "s", spec: "{}", strategy: "grid", objectiveMetric: "val_loss", objectiveMode: "min"),
                                     jobs: [makeJob(tenant: "acme"), makeJob(tenant: "acme")], parameters: ["{}", "{}"], activeJobLimit: 3)
        }
        #expect(try database.listStudies(tenant: "acme").isEmpty, "nothing of the refused study is stored")
        _ = try database.createJob(makeJob(tenant: "globex"), activeJobLimit: 3)
        let third = try database.createJob(makeJob(tenant: "acme", idempotencyKey: "k"), activeJobLimit: 3)
        #expect(throws: JobStoreError.tooManyActiveJobs(tenant: "acme", active: 3, adding: 1, limit: 3)) {
            try database.createJob(makeJob(tenant: "acme"), activeJobLimit: 3)
        }
        // A retry of a job already queued is no new job.
        #expect(try database.createJob(makeJob(tenant: "acme", idempotencyKey: "k"), activeJobLimit: 3).job == third.job)
        // A finished job frees its place.
        _ = try database.requestCancel(id: third.job.id, tenant: "acme")
        #expect(try database.createJob(makeJob(tenant: "acme"), activeJobLimit: 3).created)
    }

    @Test("a study and its jobs belong to the study's tenant")
    func studiesAreScoped() throws {
        let database = try AppDatabase.inMemory()
        let study = StudyRecord(tenant: "acme", name: "s", spec: "{}", strategy: "grid", objectiveMetric: "val_loss", objectiveMode: "min",
                                createdAt: Date(timeIntervalSince1970: 1_700_000_000))
        let (stored, jobs) = try database.createStudy(study, jobs: [makeNewJob()], parameters: ["{}"])
        #expect(jobs.allSatisfy { $0.tenant == "acme" })
        #expect(try database.study(id: stored.id, tenant: "acme") == study)
        #expect(try database.study(id: stored.id, tenant: "globex") == nil)
        #expect(try database.listStudies(tenant: "globex").isEmpty)
        #expect(try database.listStudies(tenant: "acme").map(\.id) == [stored.id])
    }

    @Test("a tenant finds, lists and deletes only its own datasets")
    func datasetsAreScoped() throws {
        let database = try AppDatabase.inMemory()
        var acme = makeDataset()
        acme.tenant = "acme"
        try database.insertDataset(acme)
        #expect(try database.dataset(id: acme.id, tenant: "acme") == acme)
        #expect(try database.dataset(id: acme.id, tenant: "globex") == nil)
        #expect(try database.dataset(id: acme.id) == acme, "the worker pool sees every tenant's dataset")
        #expect(try database.listDatasets(tenant: "globex").isEmpty)
        let usage = try database.datasetUsage(tenant: "acme")
        #expect(usage.count == 1 && usage.bytes == acme.bytes)
        let none = try database.datasetUsage(tenant: "globex")
        #expect(none.count == 0 && none.bytes == 0)
        #expect(try !database.deleteDataset(id: acme.id, tenant: "globex"))
        #expect(try database.deleteDataset(id: acme.id, tenant: "acme"))
    }

    @Test("the dataset quota bounds a tenant's count and bytes, labels included")
    func datasetQuota() throws {
        let database = try AppDatabase.inMemory()
        let quota = DatasetQuota(maxDatasets: 2, maxBytes: 1000)
        func dataset(_ tenant: String, bytes: Int) -> DatasetRecord {
            var record = makeDataset()
            record.tenant = tenant
            record.bytes = bytes
            return record
        }
        try database.insertDataset(dataset("acme", bytes: 600), quota: quota)
        #expect(throws: JobStoreError.datasetBytesExceeded(tenant: "acme", stored: 600, adding: 401, limit: 1000)) {
            try database.insertDataset(dataset("acme", bytes: 401), quota: quota)
        }
        try database.insertDataset(dataset("globex", bytes: 1000), quota: quota)
        var images = makeUnlabeledImages()
        images.tenant = "acme"
        images.bytes = 300
        try database.insertDataset(images, quota: quota)
        #expect(throws: JobStoreError.tooManyDatasets(tenant: "acme", limit: 2)) {
            try database.insertDataset(dataset("acme", bytes: 1), quota: quota)
        }
        #expect(throws: JobStoreError.datasetBytesExceeded(tenant: "acme", stored: 900, adding: 101, limit: 1000)) {
            try database.attachLabels(datasetId: images.id, labelsFileName: "l.idx", labelsBytes: 101, task: "classification",
                                      classes: ["0"], quota: quota)
        }
        #expect(try database.dataset(id: images.id)?.isUnlabeled == true)
        #expect(try database.attachLabels(datasetId: images.id, labelsFileName: "l.idx", labelsBytes: 100, task: "classification",
                                          classes: ["0"], quota: quota)?.bytes == 400)
    }

    @Test("a database from before 0006 keeps its rows as the default tenant's, metrics and queue order included")
    func upgradeKeepsRowsAsDefaultTenants() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let digits = makeDataset()
            do {
                let old = try AppDatabase.open(path: path, upTo: "0005_class_metrics.sql")
                try old.execute(sql: """
                    INSERT INTO datasets (id, name, format, rows, features, feature_names, target, task, classes, shape, bytes, file_name, created_at)
                    VALUES ('\(digits.id)', 'digits', 'csv', 1797, 64, '[]', 'label', 'classification', '["0","1"]', '[64]', 10, '\(digits.id).csv',
                            '2023-11-14 22:13:20.000');
                    INSERT INTO studies (id, name, spec, strategy, objective_metric, objective_mode, created_at)
                    VALUES ('st_old', 'old study', '{}', 'grid', 'val_loss', 'min', '2025-01-01 00:00:00.000');
                    INSERT INTO jobs (id, dataset_id, spec, epochs, created_at, idempotency_key)
                    VALUES ('job_second', '\(digits.id)', '{}', 3, '2025-01-01 00:00:00.000', 'key-1');
                    INSERT INTO jobs (id, dataset_id, spec, epochs, created_at, study_id, study_parameters, status, started_at)
                    VALUES ('job_first', 'builtin:moons', '{}', 3, '2025-01-01 00:00:00.000', 'st_old', '{}', 'running', '2025-01-01 00:00:01.000');
                    INSERT INTO metrics (job_id, epoch, train_loss, lr, grad_norm, penalty, sparsity, seconds, samples_per_second)
                    VALUES ('job_first', 1, 0.5, 0.001, 1.0, 0, 0, 0.5, 100);
                    """)
            }
            let database = try AppDatabase.open(path: path)
            #expect(try database.appliedMigrations().contains("0006_tenants.sql"))
            #expect(try database.dataset(id: digits.id, tenant: Tenant.default)?.name == "digits")
            #expect(try database.study(id: "st_old", tenant: Tenant.default)?.name == "old study")
            #expect(try database.job(id: "job_first", tenant: Tenant.default)?.studyId == "st_old")
            #expect(try database.metrics(jobId: "job_first").count == 1, "the jobs rebuild keeps the metrics")
            // Same created_at: the rowid still breaks the tie, as before the rebuild.
            #expect(try database.requeueInterruptedJobs() == 1)
            #expect(try database.claimNextJob()?.id == "job_second")
            #expect(try database.jobs(studyId: "st_old").map(\.id) == ["job_first"])
            #expect(try database.createJob(makeNewJob(idempotencyKey: "key-1")).job.id == "job_second")
            #expect(throws: JobStoreError.datasetInUse(digits.id)) { try database.deleteDataset(id: digits.id, tenant: Tenant.default) }
            // Foreign keys still hold after the rebuild.
            #expect(try database.strings(sql: "PRAGMA foreign_key_check") == [])
            #expect(throws: (any Error).self) {
                try database.execute(sql: "INSERT INTO metrics (job_id, epoch, train_loss, lr, grad_norm, penalty, sparsity, seconds, samples_per_second) VALUES ('job_none', 1, 0, 0, 0, 0, 0, 0, 0)")
            }
        }
    }

    @Test("listing a tenant's jobs is served by its index, with no sorting step")
    func tenantListingUsesIndex() throws {
        let database = try AppDatabase.inMemory()
        let plan = try database.queryPlan(sql: "SELECT * FROM jobs WHERE tenant = 'acme' ORDER BY created_at DESC, id DESC LIMIT 10")
        #expect(plan.contains { $0.contains("jobs_tenant_created") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
        let queue = try database.queryPlan(sql: AppDatabase.nextQueuedJobSQL)
        #expect(queue.contains { $0.contains("jobs_queue") }, "\(queue)")
    }
}
