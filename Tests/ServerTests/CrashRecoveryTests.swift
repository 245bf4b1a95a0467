import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// A `descent serve` child process on a free port and a data folder that outlives it.
private final class ServerProcess {
    private(set) var port: Int
    let dataFolder: URL
    private(set) var process: Process?
    private let logFile: URL

    /// The executable beside the test bundle: `swift test` builds it with the tests.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("descent")
    }

    init(dataFolder: URL) {
        self.dataFolder = dataFolder
        port = 0
        logFile = dataFolder.appendingPathExtension("log")
    }

    /// A port the kernel considers free right now (bound to port 0, then released).
    static func freePort() -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : Int.random(in: 20_000...30_000)
    }

    /// Starts the server, on a fresh free port if the one it tried was taken in the meantime.
    func start() async throws {
        for _ in 0..<3 {
            if try await startOnce() { return }
        }
        throw ProcessFailure("the server did not start; log: \(log())")
    }

    private func startOnce() async throws -> Bool {
        port = Self.freePort()
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = ["serve", "--port", String(port), "--data-dir", dataFolder.path, "--log-level", "debug", "--blas-threads", "1"]
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
        let output = try FileHandle(forWritingTo: logFile)
        try output.seekToEnd()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        self.process = process
        // Serving once /healthz answers; a process that exits first could not bind its port, and one
        // that does not answer in time (a port another test's server took first) is replaced.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning {
                self.process = nil
                return false
            }
            if (try? await request("GET", "/healthz", timeout: 2).status) == 200 { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
        return false
    }

    func log() -> String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits for the process to exit; returns how long that took.
    @discardableResult
    func stop(with signal: Int32, timeout: TimeInterval = 15) async throws -> TimeInterval {
        guard let process else { return 0 }
        let start = Date()
        kill(process.processIdentifier, signal)
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                kill(process.processIdentifier, SIGKILL)
                throw ProcessFailure("the server was still running \(timeout) s after signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        self.process = nil
        return Date().timeIntervalSince(start)
    }

    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json",
                 timeout: TimeInterval = 10) async throws -> (status: Int, data: Data) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = timeout
        if body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    func json(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async throws -> [String: Any] {
        let (status, data) = try await request(method, path, body: body, contentType: contentType)
        guard (200..<300).contains(status), let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ProcessFailure("\(method) \(path) answered \(status): \(String(decoding: data, as: UTF8.self))")
        }
        return object
    }

    func job(_ id: String) async throws -> [String: Any] { try await json("GET", "/v1/jobs/\(id)") }

    func waitForJob(_ id: String, timeout: TimeInterval = 180, until done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let job = try await job(id)
            if done(job) { return job }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw ProcessFailure("job \(id) did not get there within \(timeout) s: \(try await job(id))")
    }
}

private struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

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
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-crash-\(UUID().uuidString)")
        let server = ServerProcess(dataFolder: folder)
        defer {
            if let process = server.process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: folder)
            try? FileManager.default.removeItem(at: folder.appendingPathExtension("log"))
        }
        try await server.start()
        let csv = try Data(contentsOf: RepositoryFiles.dataset("digits.csv"))
        _ = try await server.json("POST", "/v1/datasets?name=digits", body: csv, contentType: "text/csv")
        try await body(server)
    }

    /// After the interruption and the restart: the job succeeds on attempt 2 with every epoch once,
    /// and its model is byte for byte the model of the same spec trained without interruption.
    private func expectRecovered(_ id: String, on server: ServerProcess, interruptedAt epoch: Int) async throws {
        let job = try await server.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
        #expect(job["status"] as? String == "succeeded", "\(job)\n\(server.log())")
        #expect(job["attempt"] as? Int == 2)
        let rows = try await server.json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
        #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...Self.epochs), "no gap, no repeat")
        #expect(server.log().contains("resumed from the checkpoint of epoch"), "the second attempt resumed (killed at epoch \(epoch))")

        let twin = try await server.json("POST", "/v1/jobs", body: Self.spec)["id"] as! String
        let twinJob = try await server.waitForJob(twin) { ["succeeded", "failed"].contains($0["status"] as? String ?? "") }
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
