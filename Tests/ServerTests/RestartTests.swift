import Foundation
import Hummingbird
import HummingbirdTesting
import JobStore
import NeuralNetwork
import Testing

/// A new application on the data folder of an earlier one, as after `descent serve` restarts.
@Suite("Restarting on the same data folder")
struct RestartTests {
    @Test("Queued jobs and uploaded datasets survive a restart")
    func queuedJobsSurvive() async throws {
        try await withTemporaryFolder { folder in
            let options = ServerOptions(runsWorkers: false, fileDatabase: true)
            let (ids, datasetId) = try await withServer(options, folder: folder) { api in
                let iris = try await api.uploadShared("iris.csv", name: "iris")
                let datasetId = try #require(iris["id"]?.string)
                let first = try await api.submit(try Specs.moons(epochs: 2))
                let second = try await api.submit(try Specs.iris(datasetId: datasetId))
                return ([first, second], datasetId)
            }

            try await withServer(options, folder: folder) { api in
                let jobs = try await api.get("/v1/jobs").json()["jobs"]?.array ?? []
                #expect(Set(jobs.compactMap { $0["id"]?.string }) == Set(ids))
                #expect(jobs.allSatisfy { $0["status"] == "queued" })
                let second = try await api.job(ids[1])
                #expect(second["spec"]?["dataset"] == ["id": .string(datasetId)])
                #expect(second["spec"]?["model"]?["input_shape"] == [4])
                let dataset = try await api.get("/v1/datasets/\(datasetId)")
                #expect(dataset.status == .ok)
                #expect(try dataset.json()["rows"]?.int == 150)
                #expect(prometheusValue(try await api.get("/metrics").text, "descent_queue_depth") == 2)
            }
        }
    }

    @Test("A job found running at start-up is queued again by the worker pool and then trains to success")
    func interruptedJobIsRequeued() async throws {
        try await withTemporaryFolder { folder in
            let id = try await withServer(ServerOptions(runsWorkers: false, fileDatabase: true), folder: folder) { api in
                try await api.submit(try Specs.moons(epochs: 2))
            }

            // A worker of the earlier process claimed the job and the process died while training it.
            do {
                let database = try AppDatabase.open(path: folder.appendingPathComponent("descent.sqlite").path)
                let claimed = try #require(try database.claimNextJob())
                #expect(claimed.id == id)
                #expect(claimed.status == .running)
                #expect(claimed.attempt == 1)
            }

            // Without workers nothing touches it.
            try await withServer(ServerOptions(runsWorkers: false, fileDatabase: true), folder: folder) { api in
                let status = try await api.job(id)["status"]
                #expect(status == "running")
            }

            // The worker pool's start puts it back in the queue; a worker then trains it (its second attempt).
            try await withServer(ServerOptions(runsWorkers: true, fileDatabase: true), folder: folder) { api in
                let job = try await api.waitUntilFinished(id)
                #expect(job["status"] == "succeeded", "\(job.encodedString())")
                #expect(job["attempt"]?.int == 2)
                #expect(job["epoch"]?.int == 2)
                #expect(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array?.count == 2)
                #expect(try await api.get("/v1/jobs/\(id)/model").status == .ok)
            }
        }
    }
}
