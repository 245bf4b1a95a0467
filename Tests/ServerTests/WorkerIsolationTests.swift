import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `descent serve` trains each job in a `descent worker` process of its own: what happens to that
/// process is the job's business, never the server's or another tenant's.
@Suite("Jobs in worker processes of their own", .serialized)
struct WorkerIsolationTests {
    /// Digits with a wide MLP, long enough to be caught in the middle.
    static func spec(epochs: Int = 400, maxAttempts: Int = 3) -> Data {
        Data("""
            {"dataset": {"name": "digits"}, "max_attempts": \(maxAttempts),
             "model": {"layers": [{"type": "dense", "units": 256, "activation": "relu"}, {"type": "dense", "units": 10}]},
             "training": {"epochs": \(epochs), "batch_size": 16, "seed": 3}}
            """.utf8)
    }

    static func withServer(_ name: String, arguments: [String] = [], _ body: (ServerProcess) async throws -> Void) async throws {
        try await ServerProcess.withFresh(name, arguments: arguments) { server in
            let csv = try Data(contentsOf: RepositoryFiles.dataset("digits.csv"))
            _ = try await server.json("POST", "/v1/datasets?name=digits", body: csv, contentType: "text/csv")
            try await body(server)
        }
    }

    /// The pid of the worker process training `job` (its command line names the job).
    static func workerPid(of job: String, timeout: TimeInterval = 30) async throws -> pid_t {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
            process.arguments = ["-f", "worker --single --job \(job) "]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            if let pid = output.split(separator: "\n").compactMap({ pid_t($0) }).first { return pid }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessFailure("no worker process for \(job) within \(timeout) s")
    }

    static func finished(_ job: [String: Any]) -> Bool { ["succeeded", "failed", "cancelled"].contains(job["status"] as? String ?? "") }

    @Test("A worker killed by a signal fails that attempt and is retried; the same death twice fails the job as crashed; the server answers throughout")
    func aCrashingWorkerIsThatJobsFailure() async throws {
        try await Self.withServer("isolation-crash") { server in
            let id = try #require(try await server.json("POST", "/v1/jobs", body: Self.spec())["id"] as? String)
            // Another tenant's view of the server: a second job queued behind it must still run afterwards.
            let bystander = try #require(try await server.json("POST", "/v1/jobs", body: Self.spec(epochs: 2))["id"] as? String)
            for attempt in 1...2 {
                _ = try await server.waitForJob(id) { $0["attempt"] as? Int == attempt && ($0["epoch"] as? Int ?? 0) >= 1 }
                kill(try await Self.workerPid(of: id), SIGSEGV)
                #expect(try await server.request("GET", "/healthz").status == 200)
            }
            let job = try await server.waitForJob(id, until: Self.finished)
            let error = job["error"] as? [String: Any]
            #expect(job["status"] as? String == "failed", "\(job)")
            #expect(error?["code"] as? String == "crashed", "\(job)")
            #expect((error?["message"] as? String ?? "").contains("signal 11"), "\(job)")
            #expect(job["attempt"] as? Int == 2, "a poison job is not retried a third time: \(job)")
            let other = try await server.waitForJob(bystander, until: Self.finished)
            #expect(other["status"] as? String == "succeeded", "\(other)")
        }
    }

    @Test("A job beyond its worker's memory limit fails as out of memory, not the server")
    func aJobBeyondItsMemoryLimitFailsAlone() async throws {
        try await Self.withServer("isolation-memory", arguments: ["--job-memory-limit", "\(1 << 30)", "--max-model-parameters", "500000000"]) { server in
            // 3·10⁸ parameters: 1.2 GB of weights alone, before gradients and Adam's moments.
            let body = Data("""
                {"dataset": {"name": "digits"}, "max_attempts": 3,
                 "model": {"layers": [{"type": "dense", "units": 15000}, {"type": "dense", "units": 20000}, {"type": "dense", "units": 10}]},
                 "training": {"epochs": 1}}
                """.utf8)
            let id = try #require(try await server.json("POST", "/v1/jobs", body: body)["id"] as? String)
            let job = try await server.waitForJob(id, timeout: 120, until: Self.finished)
            let error = job["error"] as? [String: Any]
            let message = error?["message"] as? String ?? ""
            #expect(job["status"] as? String == "failed", "\(job)")
            #expect(error?["code"] as? String == "crashed", "\(job)")
            #expect(message.contains("memory limit 1024 MiB"), "\(message)")
            #expect(message.contains("ran out of its memory limit") && message.contains("failed to allocate"), "the reason, not a stack trace: \(message)")
            #expect(try await server.request("GET", "/healthz").status == 200)
        }
    }

    @Test("A worker that finishes no epoch for --job-stall-timeout seconds is stopped, and the retry resumes from the checkpoint to success")
    func aStalledWorkerIsStoppedAndRetried() async throws {
        try await Self.withServer("isolation-stall", arguments: ["--job-stall-timeout", "8"]) { server in
            // 8 s, not less: under the whole suite a retried worker may take seconds to start and finish its first epoch.
            let id = try #require(try await server.json("POST", "/v1/jobs", body: Self.spec(epochs: 60))["id"] as? String)
            _ = try await server.waitForJob(id) { ($0["epoch"] as? Int ?? 0) >= 2 }
            kill(try await Self.workerPid(of: id), SIGSTOP)  // hung: alive, but no epoch comes
            let job = try await server.waitForJob(id, until: Self.finished)
            #expect(job["status"] as? String == "succeeded", "\(job)")
            #expect(job["attempt"] as? Int == 2, "\(job)")
            #expect(server.log().contains("finished no epoch in 8 s"), "the stall was reported")
            let rows = try await server.json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...60), "every epoch once")
        }
    }
}
