import Foundation
import Testing
@testable import JobStore

@Suite("JobRepository")
struct JobRepositoryTests {
    // MARK: Create, find, list

    @Test("a new job is queued with its defaults and can be found by id")
    func createAndFind() throws {
        let database = try AppDatabase.inMemory()
        let (job, created) = try database.createJob(makeNewJob(name: "digits-mlp", priority: 2, epochs: 20))

        #expect(created)
        #expect(job.id.hasPrefix("job_"))
        #expect(job.name == "digits-mlp")
        #expect(job.status == .queued)
        #expect(job.priority == 2)
        #expect(job.datasetId == "builtin:spirals")
        #expect(job.attempt == 0 && job.maxAttempts == 3)
        #expect(job.epoch == 0 && job.epochs == 20 && job.progress == 0)
        #expect(job.latest == nil && job.result == nil && job.bestEpoch == nil)
        #expect(!job.stoppedEarly && !job.cancelRequested)
        #expect(job.startedAt == nil && job.finishedAt == nil)
        #expect(try database.job(id: job.id) == job)
        #expect(try database.job(id: "job_unknown") == nil)
    }

    @Test("an idempotency key that was seen before returns the first job")
    func idempotencyKeyReturnsFirstJob() throws {
        let database = try AppDatabase.inMemory()
        let first = try database.createJob(makeNewJob(name: "first", idempotencyKey: "key-1"))
        let retry = try database.createJob(makeNewJob(name: "retry", idempotencyKey: "key-1"))
        let other = try database.createJob(makeNewJob(name: "other", idempotencyKey: "key-2"))

        #expect(first.created && !retry.created && other.created)
        #expect(retry.job == first.job)
        #expect(other.job.id != first.job.id)
        #expect(try database.listJobs(tenant: Tenant.default, status: nil, limit: 10, cursor: nil).jobs.count == 2)
    }

    @Test("listing pages through all jobs newest first, with a cursor")
    func listWithCursor() throws {
        let database = try AppDatabase.inMemory()
        var created: Set<String> = []
        for index in 0..<7 {
            created.insert(try database.createJob(makeNewJob(name: "job \(index)")).job.id)
        }

        var pages: [[JobRecord]] = []
        var cursor: String? = nil
        repeat {
            let page = try database.listJobs(tenant: Tenant.default, status: nil, limit: 3, cursor: cursor)
            pages.append(page.jobs)
            cursor = page.nextCursor
        } while cursor != nil

        #expect(pages.map(\.count) == [3, 3, 1])
        let listed = pages.flatMap { $0 }
        #expect(Set(listed.map(\.id)) == created && listed.count == created.count)
        #expect(zip(listed, listed.dropFirst()).allSatisfy { $0.createdAt >= $1.createdAt })
        // A page that ends exactly at the last job has no next cursor.
        #expect(try database.listJobs(tenant: Tenant.default, status: nil, limit: 7, cursor: nil).nextCursor == nil)
    }

    @Test("listing by status shows only jobs in that status")
    func listByStatus() throws {
        let database = try AppDatabase.inMemory()
        _ = try database.createJob(makeNewJob())
        _ = try database.createJob(makeNewJob())
        let running = try #require(try database.claimNextJob())

        #expect(try database.listJobs(tenant: Tenant.default, status: .running, limit: 10, cursor: nil).jobs.map(\.id) == [running.id])
        #expect(try database.listJobs(tenant: Tenant.default, status: .queued, limit: 10, cursor: nil).jobs.count == 1)
        #expect(try database.listJobs(tenant: Tenant.default, status: .failed, limit: 10, cursor: nil).jobs.isEmpty)
    }

    @Test("a cursor the store did not make is rejected")
    func invalidCursor() throws {
        let database = try AppDatabase.inMemory()
        #expect(throws: JobStoreError.invalidCursor("not a cursor!")) {
            try database.listJobs(tenant: Tenant.default, status: nil, limit: 10, cursor: "not a cursor!")
        }
    }

    // MARK: Claim

    @Test("claiming takes the highest priority, then the oldest job")
    func claimOrder() throws {
        let database = try AppDatabase.inMemory()
        let low = try database.createJob(makeNewJob(priority: 0)).job
        let highOld = try database.createJob(makeNewJob(priority: 5)).job
        let middle = try database.createJob(makeNewJob(priority: 1)).job
        let highNew = try database.createJob(makeNewJob(priority: 5)).job

        var claimed: [String] = []
        while let job = try database.claimNextJob() {
            #expect(job.status == .running && job.attempt == 1 && job.startedAt != nil)
            claimed.append(job.id)
        }
        #expect(claimed == [highOld.id, highNew.id, middle.id, low.id])
        #expect(try database.claimNextJob() == nil)
    }

    @Test("four threads claiming at once from one database never get the same job")
    func concurrentClaimsSharedDatabase() throws {
        try withTemporaryDirectory { folder in
            let database = try AppDatabase.open(path: folder.appendingPathComponent("descent.sqlite").path)
            try claimConcurrently(jobs: 100, databases: Array(repeating: database, count: 4))
        }
    }

    @Test("four threads claiming at once through their own connections never get the same job")
    func concurrentClaimsSeparateConnections() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let databases = try (0..<4).map { _ in try AppDatabase.open(path: path) }
            try claimConcurrently(jobs: 100, databases: databases)
        }
    }

    /// Queues `jobs` jobs, then drains the queue with one thread per database.
    private func claimConcurrently(jobs: Int, databases: [AppDatabase]) throws {
        var queued: Set<String> = []
        for _ in 0..<jobs {
            queued.insert(try databases[0].createJob(makeNewJob()).job.id)
        }
        let claimed = Locked<[String]>([])
        let errors = Locked<[String]>([])
        let group = DispatchGroup()
        let start = DispatchSemaphore(value: 0)  // released once every thread exists, so they race
        for database in databases {
            group.enter()
            Thread {
                defer { group.leave() }
                start.wait()
                do {
                    while let job = try database.claimNextJob() {
                        claimed.withLock { $0.append(job.id) }
                    }
                } catch {
                    errors.withLock { $0.append(String(describing: error)) }
                }
            }.start()
        }
        for _ in databases { start.signal() }
        group.wait()

        let ids = claimed.withLock { $0 }
        #expect(errors.withLock { $0 } == [])
        #expect(ids.count == jobs)
        #expect(Set(ids) == queued)
        #expect(try databases[0].countJobsByStatus()[.running] == jobs)
    }

    // MARK: Running

    @Test("recording an epoch stores its metrics and updates the job's progress")
    func recordEpoch() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 4)).job
        _ = try database.claimNextJob()

        let first = makeMetricsRow(jobId: job.id, epoch: 1, trainLoss: 0.9)
        let second = makeMetricsRow(jobId: job.id, epoch: 2, trainLoss: 0.7)
        try database.recordEpoch(first, progress: 0.25, latest: #"{"train_loss":0.9}"#)
        try database.recordEpoch(second, progress: 0.5, latest: #"{"train_loss":0.7}"#)

        let after = try #require(try database.job(id: job.id))
        #expect(after.epoch == 2)
        #expect(after.progress == 0.5)
        #expect(after.latest == #"{"train_loss":0.7}"#)
        #expect(try database.metrics(jobId: job.id) == [first, second])
    }

    @Test("an epoch recorded again after a resume replaces the old row and drops later ones")
    func recordEpochAgain() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 4)).job
        _ = try database.claimNextJob()
        for epoch in 1...3 {
            try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: epoch), progress: Double(epoch) / 4, latest: "{}")
        }

        // Resumed from the checkpoint of epoch 1.
        let rerun = makeMetricsRow(jobId: job.id, epoch: 2, trainLoss: 0.1)
        try database.recordEpoch(rerun, progress: 0.5, latest: "{}")

        #expect(try database.metrics(jobId: job.id).map(\.epoch) == [1, 2])
        #expect(try database.metrics(jobId: job.id).last == rerun)
        #expect(try database.job(id: job.id)?.epoch == 2)
    }

    @Test("only a running job records epochs")
    func recordEpochNeedsRunningJob() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job
        #expect(throws: JobStoreError.wrongState("job \(job.id) is not running")) {
            try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 0.1, latest: "{}")
        }
        #expect(try database.metrics(jobId: job.id).isEmpty)
    }

    @Test("finishing a running job records its outcome")
    func finish() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 10)).job
        _ = try database.claimNextJob()
        try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 0.1, latest: "{}")

        try database.finishJob(
            id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil,
            result: #"{"test_accuracy":0.97}"#, bestEpoch: 1, stoppedEarly: true)

        let after = try #require(try database.job(id: job.id))
        #expect(after.status == .succeeded)
        #expect(after.finishedAt != nil)
        #expect(after.result == #"{"test_accuracy":0.97}"#)
        #expect(after.bestEpoch == 1 && after.stoppedEarly)
        #expect(after.progress == 1)  // complete, even though it stopped early
    }

    @Test("a failed job keeps its error and its progress")
    func finishFailed() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 10)).job
        _ = try database.claimNextJob()
        try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 3), progress: 0.3, latest: "{}")

        try database.finishJob(
            id: job.id, status: .failed, errorCode: "non_finite_loss",
            errorMessage: "loss became NaN in epoch 4; try a smaller learning rate",
            result: nil, bestEpoch: nil, stoppedEarly: false)

        let after = try #require(try database.job(id: job.id))
        #expect(after.status == .failed)
        #expect(after.errorCode == "non_finite_loss")
        #expect(after.errorMessage?.contains("epoch 4") == true)
        #expect(after.progress == 0.3)
    }

    @Test("only a running job can be finished, and only with a final status")
    func finishNeedsRunningJob() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job
        #expect(throws: JobStoreError.self) {
            try database.finishJob(id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil,
                                   result: nil, bestEpoch: nil, stoppedEarly: false)
        }
        _ = try database.claimNextJob()
        #expect(throws: JobStoreError.self) {
            try database.finishJob(id: job.id, status: .queued, errorCode: nil, errorMessage: nil,
                                   result: nil, bestEpoch: nil, stoppedEarly: false)
        }
        #expect(try database.job(id: job.id)?.status == .running)
    }

    // MARK: Cancel

    @Test("cancelling a queued job cancels it at once")
    func cancelQueued() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job

        let after = try #require(try database.requestCancel(id: job.id, tenant: Tenant.default))
        #expect(after.status == .cancelled)
        #expect(after.finishedAt != nil)
        #expect(try database.job(id: job.id) == after)
        #expect(try database.claimNextJob() == nil)
    }

    @Test("cancelling a running job asks its trainer to stop")
    func cancelRunning() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job
        _ = try database.claimNextJob()
        #expect(try !database.isCancelRequested(id: job.id))

        let after = try #require(try database.requestCancel(id: job.id, tenant: Tenant.default))
        #expect(after.status == .running)
        #expect(after.cancelRequested)
        #expect(try database.isCancelRequested(id: job.id))
    }

    @Test("cancelling a finished job changes nothing, and an unknown job gives nil")
    func cancelFinishedOrUnknown() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job
        _ = try database.claimNextJob()
        try database.finishJob(id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil,
                               result: nil, bestEpoch: nil, stoppedEarly: false)
        let finished = try database.job(id: job.id)

        #expect(try database.requestCancel(id: job.id, tenant: Tenant.default) == finished)
        #expect(try database.requestCancel(id: "job_unknown", tenant: Tenant.default) == nil)
    }

    // MARK: Requeue

    @Test("after a restart, running jobs are requeued and those asked to cancel are cancelled")
    func requeueInterruptedJobsAfterRestart() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let interrupted: JobRecord
            let cancelled: JobRecord
            let waiting: JobRecord
            do {
                let database = try AppDatabase.open(path: path)
                interrupted = try database.createJob(makeNewJob()).job
                cancelled = try database.createJob(makeNewJob()).job
                waiting = try database.createJob(makeNewJob()).job
                _ = try database.claimNextJob()
                _ = try database.claimNextJob()
                try database.recordEpoch(makeMetricsRow(jobId: interrupted.id, epoch: 1), progress: 0.1, latest: "{}")
                _ = try database.requestCancel(id: cancelled.id, tenant: Tenant.default)
            }  // the server stops here, without finishing its jobs

            let restarted = try AppDatabase.open(path: path)
            #expect(try restarted.requeueInterruptedJobs() == 1)
            #expect(try restarted.job(id: cancelled.id)?.status == .cancelled)
            #expect(try restarted.job(id: cancelled.id)?.finishedAt != nil)
            #expect(try restarted.job(id: waiting.id)?.status == .queued)

            // The interrupted job is first in line again, and resumes from its epoch.
            let resumed = try #require(try restarted.claimNextJob())
            #expect(resumed.id == interrupted.id)
            #expect(resumed.attempt == 2)
            #expect(resumed.epoch == 1)
            #expect(try restarted.requeueInterruptedJobs() == 1)
            #expect(try restarted.requeueInterruptedJobs() == 0)
        }
    }

    @Test("a failed attempt goes back to the queue, unless a cancel was requested")
    func requeueJob() throws {
        let database = try AppDatabase.inMemory()
        let retried = try database.createJob(makeNewJob()).job
        let cancelled = try database.createJob(makeNewJob()).job
        _ = try database.claimNextJob()
        _ = try database.claimNextJob()
        _ = try database.requestCancel(id: cancelled.id, tenant: Tenant.default)

        try database.requeueJob(id: retried.id)
        try database.requeueJob(id: cancelled.id)

        #expect(try database.job(id: retried.id)?.status == .queued)
        #expect(try database.job(id: cancelled.id)?.status == .cancelled)
        #expect(try database.claimNextJob()?.attempt == 2)
        #expect(throws: JobStoreError.wrongState("job \(cancelled.id) is not running")) {
            try database.requeueJob(id: cancelled.id)
        }
    }

    // MARK: Delete and counts

    @Test("only a finished job can be deleted, and its metrics go with it")
    func deleteRules() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob()).job
        #expect(throws: JobStoreError.wrongState("job \(job.id) is queued")) {
            try database.deleteJob(id: job.id, tenant: Tenant.default)
        }
        _ = try database.claimNextJob()
        try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 0.1, latest: "{}")
        #expect(throws: JobStoreError.wrongState("job \(job.id) is running")) {
            try database.deleteJob(id: job.id, tenant: Tenant.default)
        }
        try database.finishJob(id: job.id, status: .failed, errorCode: "x", errorMessage: "y",
                               result: nil, bestEpoch: nil, stoppedEarly: false)

        #expect(try database.deleteJob(id: job.id, tenant: Tenant.default))
        #expect(try database.job(id: job.id) == nil)
        #expect(try database.strings(sql: "SELECT COUNT(*) FROM metrics") == ["0"])
        #expect(try !database.deleteJob(id: job.id, tenant: Tenant.default))
    }

    @Test("counts by status include every status")
    func countByStatus() throws {
        let database = try AppDatabase.inMemory()
        #expect(try database.countJobsByStatus() == [.queued: 0, .running: 0, .succeeded: 0, .failed: 0, .cancelled: 0])

        for _ in 0..<3 { _ = try database.createJob(makeNewJob()) }
        _ = try database.claimNextJob()
        let cancelled = try database.createJob(makeNewJob()).job
        _ = try database.requestCancel(id: cancelled.id, tenant: Tenant.default)

        #expect(try database.countJobsByStatus() == [.queued: 2, .running: 1, .succeeded: 0, .failed: 0, .cancelled: 1])
    }

    @Test("active jobs of a dataset are its queued and running ones")
    func activeJobCount() throws {
        let database = try AppDatabase.inMemory()
        _ = try database.createJob(makeNewJob(datasetId: "ds_a"))
        _ = try database.createJob(makeNewJob(datasetId: "ds_a"))
        _ = try database.createJob(makeNewJob(datasetId: "ds_b"))
        _ = try database.claimNextJob()
        let cancelled = try database.createJob(makeNewJob(datasetId: "ds_a")).job
        _ = try database.requestCancel(id: cancelled.id, tenant: Tenant.default)

        #expect(try database.activeJobCount(datasetId: "ds_a") == 2)
        #expect(try database.activeJobCount(datasetId: "ds_b") == 1)
        #expect(try database.activeJobCount(datasetId: "ds_c") == 0)
    }
}
