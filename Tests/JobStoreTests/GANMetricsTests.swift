import Foundation
import Testing
@testable import JobStore

@Suite("GAN metrics (migration 0004)")
struct GANMetricsTests {
    @Test("a GAN epoch stores d_loss, g_loss, d_real and d_fake; a supervised epoch leaves them NULL")
    func ganColumns() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 2)).job
        _ = try database.claimNextJob()
        var gan = makeMetricsRow(jobId: job.id, epoch: 1, trainLoss: 0.8)
        gan.dLoss = 1.35
        gan.gLoss = 0.8
        gan.dReal = 0.52
        gan.dFake = 0.48
        let supervised = makeMetricsRow(jobId: job.id, epoch: 2)
        try database.recordEpoch(gan, progress: 0.5, latest: "{}")
        try database.recordEpoch(supervised, progress: 1, latest: "{}")
        let rows = try database.metrics(jobId: job.id)
        #expect(rows == [gan, supervised])
        #expect(rows[1].dLoss == nil && rows[1].gLoss == nil && rows[1].dReal == nil && rows[1].dFake == nil)
        let columns = try database.strings(sql: "SELECT name FROM pragma_table_info('metrics')")
        #expect(["d_loss", "g_loss", "d_real", "d_fake"].allSatisfy(columns.contains), "\(columns)")
    }

    @Test("D(x) and D(G(z)) are probabilities")
    func probabilitiesAreChecked() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 2)).job
        _ = try database.claimNextJob()
        var row = makeMetricsRow(jobId: job.id, epoch: 1)
        row.dReal = 1.5
        #expect(throws: (any Error).self) { try database.recordEpoch(row, progress: 0.5, latest: "{}") }
        #expect(try database.metrics(jobId: job.id).isEmpty)
    }

    @Test("metrics recorded before 0004 read back with no GAN values")
    func upgradeKeepsOldRows() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let jobId = "job_before0004"
            do {
                let old = try AppDatabase.open(path: path, upTo: "0003_dataset_labels.sql")
                // Raw SQL: today's records have columns (tenant, 0006) that this old schema lacks.
                try old.execute(sql: """
                    INSERT INTO jobs (id, dataset_id, spec, epochs, created_at)
                    VALUES ('\(jobId)', 'builtin:spirals', '{}', 2, '2025-01-01 00:00:00.000')
                    """)
                try old.execute(sql: """
                    INSERT INTO metrics (job_id, epoch, train_loss, lr, grad_norm, penalty, sparsity, seconds, samples_per_second)
                    VALUES ('\(jobId)', 1, 0.5, 0.001, 1.0, 0, 0, 0.5, 100)
                    """)
            }
            let database = try AppDatabase.open(path: path)
            #expect(try database.appliedMigrations().contains("0004_gan_metrics.sql"))
            let rows = try database.metrics(jobId: jobId)
            #expect(rows.count == 1 && rows[0].trainLoss == 0.5 && rows[0].dLoss == nil && rows[0].dFake == nil)
        }
    }
}
