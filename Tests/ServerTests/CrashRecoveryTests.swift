import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Real processes, real signals: what a crash or a deploy does to a job in training.
@Suite("Crash recovery on a real process", .serialized)
struct CrashRecoveryTests {
    /// Long enough (several seconds alone, more under the parallel suite) to be killed in the middle.
    static let epochs = 120
    /// Digits with a wide MLP.
    static let spec = Data("""
        {"name": "crash-me", "dataset": {"name": "digits"}, "validation": {"split": 0.2}, "test": {"split": 0.2},
         "model": {"layers": [{"type": "dense", "units": 384, "activation": "relu"}, {"type": "dropout", "rate": 0.2},
                              {"type": "dense", "units": 384, "activation": "relu"}, {"type": "dense", "units": 10}]},
         "optimizer": {"type": "adam", "lr": 0.0005}, "schedule": {"type": "cosine"},
         "training": {"epochs": \(epochs), "batch_size": 8, "seed": 11}}
        """.utf8)

    /// Runs a server on a fresh data folder with digits uploaded.
    private func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        try await ServerProcess.withFresh("crash") { server in
            let csv = try Data(contentsOf: RepositoryFiles.dataset("digits.csv"))
            _ = try await server.json("POST", "/v1/datasets?name=digits", body: csv, contentType: "text/csv")
            try await body(server)
        }
    }

    /// After the interruption and the restart: the job succeeds on attempt 2 with every epoch once,
    /// and its model is byte for byte the model of the same spec trained without interruption.
    private func expectRecovered(_ id: String, on server: ServerProcess, interruptedAt epoch: Int) async throws {
        // Generous waits: this test's two 120-epoch jobs share two cores with the whole suite (the fleet's servers too).
        let job = try await server.waitForJob(id, timeout: 600) { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
        #expect(job["status"] as? String == "succeeded", "\(job)\n\(server.log())")
        #expect(job["attempt"] as? Int == 2)
        let rows = try await server.json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
        #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...Self.epochs), "no gap, no repeat")
        #expect(server.log().contains("resumed from the checkpoint of epoch"), "the second attempt resumed (killed at epoch \(epoch))")

        let twin = try await server.json("POST", "/v1/jobs", body: Self.spec)["id"] as! String
        let twinJob = try await server.waitForJob(twin, timeout: 600) { ["succeeded", "failed"].contains($0["status"] as? String ?? "") }
        #expect(twinJob["attempt"] as? Int == 1)
        let resumedModel = try await server.request("GET", "/v1/jobs/\(id)/model").data
        let straightModel = try await server.request("GET", "/v1/jobs/\(twin)/model").data
        #expect(resumedModel.count > 1000)
        #expect(resumedModel == straightModel, "the resumed job's weights differ from an uninterrupted run's")
        // Finished jobs keep no checkpoint.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: server.dataFolder.appendingPathComponent("checkpoints").path)) ?? []
        #expect(left.isEmpty, "\(left)")
    }

    @Test("kill -9 mid-training, restart: the job resumes from its last checkpoint and ends bit for bit as an uninterrupted run")
    func sigkillResumesFromTheCheckpoint() async throws {
        try await withServer { server in
            let id = try await server.json("POST", "/v1/jobs", body: Self.spec)["id"] as! String
            let running = try await server.waitForJob(id) { ($0["epoch"] as? Int ?? 0) >= 5 }
            try await server.stop(with: SIGKILL)
            let epoch = running["epoch"] as? Int ?? 0
            #expect(epoch < Self.epochs, "the job finished before it could be killed; make it longer")
            try await server.start()
            try await expectRecovered(id, on: server, interruptedAt: epoch)
        }
    }

    @Test("SIGTERM stops the server within 10 s, an open event stream notwithstanding, with the job back in the queue; the next start resumes it")
    func sigtermRequeuesAndResumes() async throws {
        try await withServer { server in
            let id = try await server.json("POST", "/v1/jobs", body: Self.spec)["id"] as! String
            let running = try await server.waitForJob(id) { ($0["epoch"] as? Int ?? 0) >= 3 }
            // A client following the job's event stream must not hold the shutdown open.
            let follower = URLSession.shared.dataTask(with: URL(string: "http://127.0.0.1:\(server.port)/v1/jobs/\(id)/events")!)
            follower.resume()
            defer { follower.cancel() }
            try await Task.sleep(for: .milliseconds(300))
            let seconds = try await server.stop(with: SIGTERM)
            #expect(seconds < 10, "exit took \(seconds) s")
            try await server.start()
            // Requeued by the shutdown itself, not by the start-up sweep of running jobs.
            #expect(!server.log().contains("requeued 1 interrupted"), "\(server.log())")
            try await expectRecovered(id, on: server, interruptedAt: running["epoch"] as? Int ?? 0)
        }
    }

    @Test("Shutdowns do not use up attempts: a job of max_attempts 1 handed back by two SIGTERMs (a rolling deploy) still succeeds")
    func gracefulShutdownsDoNotCountAsAttempts() async throws {
        try await withServer { server in
            var spec = try #require(try JSONSerialization.jsonObject(with: Self.spec) as? [String: Any])
            spec["max_attempts"] = 1
            let id = try await server.json("POST", "/v1/jobs", body: try JSONSerialization.data(withJSONObject: spec))["id"] as! String
            for attempt in 1...2 {
                let running = try await server.waitForJob(id) { $0["attempt"] as? Int == attempt && ($0["epoch"] as? Int ?? 0) >= 1 }
                #expect(running["status"] as? String == "running", "\(running)")
                try await server.stop(with: SIGTERM)
                try await server.start()
            }
            let job = try await server.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "succeeded", "\(job)")
            #expect(job["attempt"] as? Int == 3, "the attempts keep their numbers: \(job)")
        }
    }

    @Test("a job whose attempts keep dying ends failed after max_attempts instead of crash-looping the server")
    func crashLoopEndsInFailure() async throws {
        try await withServer { server in
            var spec = try #require(try JSONSerialization.jsonObject(with: Self.spec) as? [String: Any])
            spec["max_attempts"] = 2
            let id = try await server.json("POST", "/v1/jobs", body: try JSONSerialization.data(withJSONObject: spec))["id"] as! String
            for attempt in 1...2 {
                _ = try await server.waitForJob(id) { $0["attempt"] as? Int == attempt && $0["status"] as? String == "running" }
                try await server.stop(with: SIGKILL)
                try await server.start()
            }
            let job = try await server.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "failed")
            let error = job["error"] as? [String: Any]
            #expect(error?["code"] as? String == "too_many_attempts", "\(job)")
            let message = (error?["message"] as? String) ?? ""
            #expect(message.contains("max_attempts 2"), "\(message)")
            // The server is still there and takes new work.
            #expect(try await server.request("GET", "/healthz").status == 200)
        }
    }
}
