import Foundation
import GRDB
import JobStore
import Testing

@Suite("Checkpoint pointers (migration 0007)")
struct CheckpointPointerTests {
    @Test("an epoch recorded with its checkpoint moves the pointer in the same transaction; one without leaves it")
    func pointerMovesWithTheEpoch() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 4)).job
        _ = try database.claimNextJob()
        #expect(try database.job(id: job.id)?.checkpointEpoch == nil)
        try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 0.25, latest: "{}", checkpointEpoch: 1)
        try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 2), progress: 0.5, latest: "{}", checkpointEpoch: 2)
        #expect(try database.job(id: job.id)?.checkpointEpoch == 2)
        try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 3), progress: 0.75, latest: "{}")
        #expect(try database.job(id: job.id)?.checkpointEpoch == 2)
    }

    @Test("rewinding a resumed job drops the metrics after its checkpoint; finishing clears the pointer")
    func rewindAndFinish() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 4)).job
        _ = try database.claimNextJob()
        for epoch in 1...3 {
            try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: epoch), progress: Double(epoch) / 4, latest: "{}",
                                     checkpointEpoch: epoch == 3 ? nil : epoch)
        }
        try database.rewindJob(id: job.id, toEpoch: 2)
        #expect(try database.metrics(jobId: job.id).map(\.epoch) == [1, 2])
        #expect(try database.job(id: job.id)?.epoch == 2)
        try database.finishJob(id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil, result: nil, bestEpoch: nil, stoppedEarly: false)
        #expect(try database.job(id: job.id)?.checkpointEpoch == nil)
    }

    @Test("the pointer cannot name epoch 0 or below")
    func pointerIsPositive() throws {
        let database = try AppDatabase.inMemory()
        let job = try database.createJob(makeNewJob(epochs: 4)).job
        _ = try database.claimNextJob()
        #expect(throws: (any Error).self) {
            try database.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 0.25, latest: "{}", checkpointEpoch: 0)
        }
    }
}
