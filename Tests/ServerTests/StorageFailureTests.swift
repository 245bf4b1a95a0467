import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// What a job does when the data folder cannot take its files: fail with a clear message, after
/// its retries, while the server keeps serving and the store stays consistent.
@Suite("Storage failures")
struct StorageFailureTests {
    @Test("an unwritable checkpoints folder fails the job after its attempts with a storage_error naming the checkpoint; the server keeps serving")
    func unwritableCheckpointsFailTheJob() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            // A file where the folder should be: every checkpoint write fails (root ignores permissions, not this).
            let checkpoints = api.folder.appendingPathComponent("checkpoints")
            try? FileManager.default.removeItem(at: checkpoints)
            #expect(FileManager.default.createFile(atPath: checkpoints.path, contents: Data("not a folder".utf8)))
            let id = try await api.submit([
                "dataset": ["builtin": "moons", "samples": 200], "max_attempts": 2,
                "model": ["layers": [["type": "dense", "units": 8, "activation": "relu"], ["type": "dense", "units": 2]]],
                "training": ["epochs": 3],
            ])
            let job = try await api.waitUntilFinished(id)
            #expect(job["status"] == "failed", "\(job.encodedString())")
            #expect(job["error"]?["code"] == "storage_error")
            let message = job["error"]?["message"]?.string ?? ""
            #expect(message.contains("checkpoint of epoch 1") && message.contains("attempt 2 of 2"), "\(message)")
            #expect(job["attempt"]?.int == 2)
            // No epoch was recorded without its checkpoint, and nothing was left behind.
            #expect(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array?.isEmpty == true)
            #expect(try await api.get("/healthz").status == .ok)
            // Once the folder is back, jobs train again.
            try FileManager.default.removeItem(at: checkpoints)
            try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
            let next = try await api.submit([
                "dataset": ["builtin": "moons", "samples": 200],
                "model": ["layers": [["type": "dense", "units": 8, "activation": "relu"], ["type": "dense", "units": 2]]],
                "training": ["epochs": 2],
            ])
            #expect(try await api.waitUntilFinished(next)["status"] == "succeeded")
        }
    }
}
