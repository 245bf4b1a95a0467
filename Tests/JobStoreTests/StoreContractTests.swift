import Foundation
import PostgresTestSupport
import Testing
@testable import JobStore

/// Everything the server asks of a store.
typealias Store = JobRepository & DatasetRepository & StudyRepository & TokenRepository & WebhookDeliveryRepository

/// The two stores behind the repository protocols: the same contract runs against both.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// A fresh, empty store: SQLite in memory, or a new database on the test cluster.
    func makeStore(nodeId: String = "node-a", leaseSeconds: Double = 30) throws -> any Store {
        switch self {
        case .sqlite: return try AppDatabase.inMemory()
        case .postgres: return try makePostgresStore(nodeId: nodeId, leaseSeconds: leaseSeconds)
        }
    }
}

func makePostgresStore(url: String? = nil, nodeId: String = "node-a", leaseSeconds: Double = 30) throws -> PostgresStore {
    let cluster = try #require(PostgresCluster.shared, "PostgreSQL 15 is needed (make test installs postgresql-15)")
    return try PostgresStore.open(url: url ?? cluster.makeDatabase(), nodeId: nodeId, leaseSeconds: leaseSeconds, maxConnections: 4)
}

@Suite("The store contract, on SQLite and on PostgreSQL")
struct StoreContractTests {
    @Test("a new job is queued with its defaults, found by id, and only by its tenant", arguments: StoreKind.allCases)
    func createAndFind(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let (job, created) = try store.createJob(makeNewJob(name: "digits-mlp", priority: 2, epochs: 20))
        #expect(created && job.id.hasPrefix("job_") && job.status == .queued && job.priority == 2)
        #expect(job.attempt == 0 && job.maxAttempts == 3 && job.epoch == 0 && job.epochs == 20 && job.progress == 0)
        #expect(!job.stoppedEarly && !job.cancelRequested && job.startedAt == nil && job.finishedAt == nil)
        #expect(try store.job(id: job.id) == job)
        #expect(try store.job(id: job.id, tenant: Tenant.default) == job)
        #expect(try store.job(id: job.id, tenant: "other") == nil)
        #expect(try store.job(id: "job_unknown") == nil)
    }

    @Test("an idempotency key returns the first job, per tenant, even past the active-job limit", arguments: StoreKind.allCases)
    func idempotencyAndLimit(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let first = try store.createJob(makeNewJob(name: "first", idempotencyKey: "key-1"), activeJobLimit: 1)
        let retry = try store.createJob(makeNewJob(name: "retry", idempotencyKey: "key-1"), activeJobLimit: 1)
        #expect(first.created && !retry.created && retry.job == first.job)
        #expect(throws: JobStoreError.tooManyActiveJobs(tenant: Tenant.default, active: 1, adding: 1, limit: 1)) {
            try store.createJob(makeNewJob(name: "second"), activeJobLimit: 1)
        }
        var other = makeNewJob(name: "other tenant", idempotencyKey: "key-1")
        other.tenant = "acme"
        let otherJob = try store.createJob(other, activeJobLimit: 1)
        #expect(otherJob.created && otherJob.job.id != first.job.id && otherJob.job.tenant == "acme")
    }

    @Test("MPI ranks of a tenant's queued and running jobs are limited together, per tenant; a finished job frees its ranks",
          arguments: StoreKind.allCases)
    func mpiProcessLimit(kind: StoreKind) throws {
        let store = try kind.makeStore()
        func mpiJob(_ processes: Int, tenant: String = Tenant.default) -> NewJob {
            var job = makeNewJob()
            job.spec = #"{"dataset":{"builtin":"spirals"},"model":{"preset":"mlp"},"distributed":{"processes":\#(processes)}}"#
            job.mpiProcesses = processes
            job.tenant = tenant
            return job
        }
        let limits = TenantLimits(mpiProcesses: 6)
        let first = try store.createJob(mpiJob(4), limits: limits).job
        _ = try store.createJob(makeNewJob(), limits: limits)  // no ranks: never refused by this limit
        #expect(throws: JobStoreError.tooManyMPIProcesses(tenant: Tenant.default, active: 4, adding: 4, limit: 6)) {
            try store.createJob(mpiJob(4), limits: limits)
        }
        #expect(try store.createJob(mpiJob(4, tenant: "acme"), limits: limits).created, "another tenant has its own ranks")
        #expect(throws: JobStoreError.tooManyMPIProcesses(tenant: Tenant.default, active: 4, adding: 3, limit: 6)) {
            try store.createStudy(StudyRecord(name: "s", spec: "{}", strategy: "grid", objectiveMetric: "val_loss", objectiveMode: "min"),
                                  jobs: [mpiJob(1), mpiJob(2)], parameters: ["{}", "{}"], limits: limits)
        }
        #expect(try store.requestCancel(id: first.id, tenant: Tenant.default)?.status == .cancelled)
        #expect(try store.createJob(mpiJob(4), limits: limits).created, "a cancelled job's ranks are free again")
    }

    @Test("listing pages through a tenant's jobs newest first with a cursor, by status too", arguments: StoreKind.allCases)
    func listing(kind: StoreKind) throws {
        let store = try kind.makeStore()
        var ids: [String] = []
        for index in 0..<7 { ids.append(try store.createJob(makeNewJob(name: "job \(index)")).job.id) }
        var pages: [[JobRecord]] = []
        var cursor: String? = nil
        repeat {
            let page = try store.listJobs(tenant: Tenant.default, status: nil, limit: 3, cursor: cursor)
            pages.append(page.jobs)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(pages.map(\.count) == [3, 3, 1])
        let listed = pages.flatMap { $0 }
        #expect(Set(listed.map(\.id)) == Set(ids) && listed.count == 7)
        #expect(zip(listed, listed.dropFirst()).allSatisfy { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) })
        _ = try store.claimNextJob()
        #expect(try store.listJobs(tenant: Tenant.default, status: .running, limit: 10, cursor: nil).jobs.count == 1)
        #expect(try store.listJobs(tenant: Tenant.default, status: .queued, limit: 10, cursor: nil).jobs.count == 6)
        #expect(try store.listJobs(tenant: "other", status: nil, limit: 10, cursor: nil).jobs.isEmpty)
        #expect(throws: JobStoreError.self) { try store.listJobs(tenant: Tenant.default, status: nil, limit: 3, cursor: "not-a-cursor") }
    }

    @Test("claiming takes the highest priority, then the oldest, and each job once", arguments: StoreKind.allCases)
    func claimOrder(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let low = try store.createJob(makeNewJob(name: "low", priority: 0)).job
        let high = try store.createJob(makeNewJob(name: "high", priority: 5)).job
        let lowLater = try store.createJob(makeNewJob(name: "low later", priority: 0)).job
        let claimed = try [store.claimNextJob(), store.claimNextJob(), store.claimNextJob()].map { $0?.id }
        #expect(claimed == [high.id, low.id, lowLater.id])
        #expect(try store.claimNextJob() == nil)
        let running = try #require(try store.job(id: high.id))
        #expect(running.status == .running && running.attempt == 1 && running.startedAt != nil)
    }

    @Test("a running job records epochs, rewinds, and finishes; metrics read back in order", arguments: StoreKind.allCases)
    func runningJob(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let job = try store.createJob(makeNewJob(epochs: 4)).job
        #expect(throws: JobStoreError.self) { try store.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 0.25, latest: "{}") }
        _ = try store.claimNextJob()
        for epoch in 1...3 {
            try store.recordEpoch(makeMetricsRow(jobId: job.id, epoch: epoch, trainLoss: Double(epoch)), progress: Double(epoch) / 4,
                                  latest: #"{"train_loss":1}"#, checkpointEpoch: epoch)
        }
        #expect(try store.metrics(jobId: job.id).map(\.epoch) == [1, 2, 3])
        #expect(try store.metrics(jobId: job.id)[1] == makeMetricsRow(jobId: job.id, epoch: 2, trainLoss: 2))
        #expect(try store.job(id: job.id)?.checkpointEpoch == 3)
        try store.rewindJob(id: job.id, toEpoch: 1)
        #expect(try store.metrics(jobId: job.id).map(\.epoch) == [1])
        #expect(try store.job(id: job.id)?.epoch == 1)
        try store.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 2, trainLoss: 9), progress: 0.5, latest: "{}")
        #expect(try store.metrics(jobId: job.id).map(\.trainLoss) == [1, 9])
        try store.finishJob(id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil, result: #"{"parameters":3}"#,
                            bestEpoch: 2, stoppedEarly: true)
        let finished = try #require(try store.job(id: job.id))
        #expect(finished.status == .succeeded && finished.progress == 1 && finished.finishedAt != nil)
        #expect(finished.bestEpoch == 2 && finished.stoppedEarly && finished.checkpointEpoch == nil && finished.result == #"{"parameters":3}"#)
        #expect(throws: JobStoreError.self) {
            try store.finishJob(id: job.id, status: .failed, errorCode: nil, errorMessage: nil, result: nil, bestEpoch: nil, stoppedEarly: false)
        }
        #expect(try store.countJobsByStatus() == [.queued: 0, .running: 0, .succeeded: 1, .failed: 0, .cancelled: 0])
        #expect(try store.deleteJob(id: job.id, tenant: Tenant.default))
        #expect(try store.metrics(jobId: job.id).isEmpty)
        #expect(try store.job(id: job.id) == nil)
    }

    @Test("cancelling: a queued job at once, a running one by request; a requeue honors the request", arguments: StoreKind.allCases)
    func cancelling(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let running = try store.createJob(makeNewJob(name: "running")).job
        _ = try store.claimNextJob()
        let queued = try store.createJob(makeNewJob(name: "queued")).job
        #expect(try store.requestCancel(id: queued.id, tenant: Tenant.default)?.status == .cancelled)
        #expect(try store.requestCancel(id: running.id, tenant: "other") == nil)
        let requested = try #require(try store.requestCancel(id: running.id, tenant: Tenant.default))
        #expect(requested.status == .running && requested.cancelRequested)
        #expect(try store.isCancelRequested(id: running.id))
        #expect(throws: JobStoreError.self) { try store.deleteJob(id: running.id, tenant: Tenant.default) }
        try store.requeueJob(id: running.id)
        #expect(try store.job(id: running.id)?.status == .cancelled)
    }

    @Test("a failed attempt goes back to the queue and the next claim counts a second attempt", arguments: StoreKind.allCases)
    func requeue(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let job = try store.createJob(makeNewJob()).job
        _ = try store.claimNextJob()
        try store.requeueJob(id: job.id)
        #expect(try store.job(id: job.id)?.status == .queued)
        #expect(try store.claimNextJob()?.attempt == 2)
        #expect(try store.requeueInterruptedJobs() == 1)
        #expect(try store.job(id: job.id)?.status == .queued)
    }

    @Test("datasets: stored, listed by tenant, quota, in-use refusal and labels", arguments: StoreKind.allCases)
    func datasets(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let dataset = makeDataset()
        try store.insertDataset(dataset, quota: DatasetQuota(maxDatasets: 2, maxBytes: 1_000_000))
        #expect(try store.dataset(id: dataset.id) == dataset)
        #expect(try store.dataset(id: dataset.id, tenant: "other") == nil)
        #expect(try store.listDatasets(tenant: Tenant.default) == [dataset])
        let usage = try store.datasetUsage(tenant: Tenant.default)
        #expect(usage.count == 1 && usage.bytes == 123_456)
        #expect(throws: JobStoreError.self) {
            try store.insertDataset(makeDataset(), quota: DatasetQuota(maxDatasets: 2, maxBytes: 200_000))
        }
        _ = try store.createJob(makeNewJob(datasetId: dataset.id))
        #expect(try store.activeJobCount(datasetId: dataset.id) == 1)
        #expect(throws: JobStoreError.datasetInUse(dataset.id)) { try store.deleteDataset(id: dataset.id, tenant: Tenant.default) }

        var images = makeDataset(id: makeIdentifier(prefix: "ds_"), createdAt: 1_700_000_100)
        images.format = "idx"
        images.task = DatasetRecord.unlabeledTask
        images.classes = nil
        images.target = nil
        try store.insertDataset(images)
        let labelled = try #require(try store.attachLabels(datasetId: images.id, labelsFileName: "labels.idx", labelsBytes: 10,
                                                           task: "classification", classes: ["a", "b"]))
        #expect(labelled.labelsFileName == "labels.idx" && labelled.bytes == images.bytes + 10 && labelled.classes == ["a", "b"])
        #expect(throws: JobStoreError.self) {
            try store.attachLabels(datasetId: images.id, labelsFileName: "again.idx", labelsBytes: 1, task: "classification", classes: nil)
        }
        #expect(try store.attachLabels(datasetId: "ds_unknown", labelsFileName: "x", labelsBytes: 1, task: "regression", classes: nil) == nil)
        #expect(try store.deleteDataset(id: images.id, tenant: Tenant.default))
        #expect(try !store.deleteDataset(id: images.id, tenant: Tenant.default))
    }

    @Test("what a queued job names cannot be deleted under it: its validation dataset, its teacher job; shutdowns do not count as attempts",
          arguments: StoreKind.allCases)
    func referencesAndHandBacks(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let heldOut = makeDataset()
        try store.insertDataset(heldOut)
        let teacher = try store.createJob(makeNewJob(name: "teacher")).job
        _ = try store.claimNextJob()
        try store.finishJob(id: teacher.id, status: .succeeded, errorCode: nil, errorMessage: nil, result: "{}", bestEpoch: nil, stoppedEarly: false)
        var student = makeNewJob(name: "student")
        student.spec = #"{"dataset":{"builtin":"spirals"},"validation":{"dataset":"\#(heldOut.id)"},"distillation":{"teacher_job":"\#(teacher.id)"}}"#
        let queued = try store.createJob(student).job
        #expect(try store.activeJobCount(datasetId: heldOut.id) == 1)
        #expect(throws: JobStoreError.datasetInUse(heldOut.id)) { try store.deleteDataset(id: heldOut.id, tenant: Tenant.default) }
        #expect(throws: JobStoreError.self) { try store.deleteJob(id: teacher.id, tenant: Tenant.default) }

        // The student runs and a shutdown hands it back: the attempt keeps its number but does not count.
        #expect(try store.claimNextJob()?.id == queued.id)
        try store.requeueJob(id: queued.id, countingAttempt: false)
        let handedBack = try #require(try store.claimNextJob())
        #expect(handedBack.attempt == 2 && handedBack.handedBack == 1 && handedBack.countedAttempts == 1)
        try store.requeueJob(id: queued.id)
        #expect(try store.claimNextJob()?.countedAttempts == 2)

        try store.finishJob(id: queued.id, status: .succeeded, errorCode: nil, errorMessage: nil, result: "{}", bestEpoch: nil, stoppedEarly: false)
        #expect(try store.deleteJob(id: teacher.id, tenant: Tenant.default))
        #expect(try store.deleteDataset(id: heldOut.id, tenant: Tenant.default))
    }

    @Test("a study stores its jobs in order, all or nothing under the tenant's limit", arguments: StoreKind.allCases)
    func studies(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let study = StudyRecord(name: "lr sweep", spec: "{}", strategy: "grid", objectiveMetric: "val_loss", objectiveMode: "min")
        let (stored, jobs) = try store.createStudy(study, jobs: [makeNewJob(name: "a"), makeNewJob(name: "b"), makeNewJob(name: "c")],
                                                   parameters: [#"{"lr":1}"#, #"{"lr":2}"#, #"{"lr":3}"#])
        #expect(stored.id == study.id && jobs.map(\.name) == ["a", "b", "c"])
        #expect(try store.jobs(studyId: study.id).map(\.id) == jobs.map(\.id))
        #expect(try store.jobs(studyId: study.id).allSatisfy { $0.studyId == study.id && $0.studyParameters != nil })
        #expect(try store.study(id: study.id, tenant: Tenant.default) == stored)
        #expect(try store.study(id: study.id, tenant: "other") == nil)
        #expect(try store.listStudies(tenant: Tenant.default) == [stored])
        let refused = StudyRecord(name: "too many", spec: "{}", strategy: "grid", objectiveMetric: "val_loss", objectiveMode: "min")
        #expect(throws: JobStoreError.self) {
            try store.createStudy(refused, jobs: [makeNewJob(), makeNewJob()], parameters: ["{}", "{}"], activeJobLimit: 4)
        }
        #expect(try store.study(id: refused.id, tenant: Tenant.default) == nil)
    }

    @Test("tokens authenticate their tenant until revoked", arguments: StoreKind.allCases)
    func tokens(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let (record, token) = try store.createToken(tenant: "acme")
        #expect(try store.tenant(authenticatedBy: token) == "acme")
        #expect(try store.tenant(authenticatedBy: token + "x") == nil)
        #expect(throws: JobStoreError.invalidTenantName("no spaces")) { try store.createToken(tenant: "no spaces") }
        let revoked = try #require(try store.revokeToken(id: record.id))
        #expect(revoked.isRevoked)
        #expect(try store.tenant(authenticatedBy: token) == nil)
        #expect(try store.listTokens() == [revoked])
        #expect(try store.revokeToken(id: "tok_unknown") == nil)
    }

    @Test("webhook deliveries are logged per job, oldest first", arguments: StoreKind.allCases)
    func deliveries(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let job = try store.createJob(makeNewJob()).job
        for attempt in 1...2 {
            try store.recordDelivery(WebhookDelivery(jobId: job.id, event: "succeeded", url: "http://127.0.0.1:1/hook", attempt: attempt,
                                                     statusCode: attempt == 2 ? 200 : nil, error: attempt == 1 ? "refused" : nil,
                                                     delivered: attempt == 2, durationMs: 1.5, attemptedAt: Date(timeIntervalSince1970: 1_700_000_000)))
        }
        try store.recordDelivery(WebhookDelivery(jobId: "job_gone", event: "failed", url: "u", attempt: 1, statusCode: nil, error: nil,
                                                 delivered: false, durationMs: 0, attemptedAt: Date()))
        let logged = try store.deliveries(jobId: job.id)
        #expect(logged.map(\.attempt) == [1, 2] && logged.map(\.delivered) == [false, true] && logged[1].statusCode == 200)
        #expect(try store.deliveries(jobId: "job_gone").isEmpty)
    }

    @Test("a tenant's webhook secret is made, rotated with the previous one kept for a while, listed without it, and removed",
          arguments: StoreKind.allCases)
    func webhookSecrets(kind: StoreKind) throws {
        let store = try kind.makeStore()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try store.webhookSecrets(tenant: "acme", now: now).isEmpty)
        let first = try store.rotateWebhookSecret(tenant: "acme", keepingPrevious: 3600, now: now)
        #expect(first.hasPrefix(WebhookSecret.prefix) && first.count == WebhookSecret.prefix.count + 43)
        #expect(try store.webhookSecrets(tenant: "acme", now: now) == [first], "nothing to keep on the first rotation")
        let second = try store.rotateWebhookSecret(tenant: "acme", keepingPrevious: 3600, now: now)
        #expect(second != first)
        #expect(try store.webhookSecrets(tenant: "acme", now: now.addingTimeInterval(3599)) == [second, first])
        #expect(try store.webhookSecrets(tenant: "acme", now: now.addingTimeInterval(3601)) == [second], "the previous one expires")
        let third = try store.rotateWebhookSecret(tenant: "acme", keepingPrevious: 0, now: now)
        #expect(try store.webhookSecrets(tenant: "acme", now: now) == [third], "0 drops the previous secret at once")
        #expect(try store.webhookSecrets(tenant: "globex", now: now).isEmpty, "secrets are per tenant")
        #expect(throws: JobStoreError.invalidTenantName("no spaces")) { try store.rotateWebhookSecret(tenant: "no spaces", keepingPrevious: 0, now: now) }
        let listed = try store.listWebhookSecrets()
        #expect(listed.map(\.tenant) == ["acme"] && abs(listed[0].createdAt.timeIntervalSince(now)) < 0.01)
        #expect(try store.removeWebhookSecret(tenant: "acme"))
        #expect(try !store.removeWebhookSecret(tenant: "acme"))
        #expect(try store.webhookSecrets(tenant: "acme", now: now).isEmpty)
    }
}
