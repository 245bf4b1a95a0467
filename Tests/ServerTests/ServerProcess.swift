import Foundation
import Server
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `descent serve` child process on a free port and a data folder that outlives it.
/// `@unchecked Sendable`: its state changes only in `start` and `stop`, which a test calls one at a
/// time; requests (`json`, `request`) may go out from several tasks at once.
final class ServerProcess: @unchecked Sendable {
    private(set) var port: Int
    let dataFolder: URL
    private(set) var process: Process?
    private let logFile: URL

    /// The executable beside the test bundle: `swift test` builds it with the tests.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("descent")
    }

    /// Passed to `descent serve` after the usual ones (a fleet's `--database`, `--lease-seconds`…).
    let extraArguments: [String]

    /// `logFile` nil: `<dataFolder>.log`. Servers of a fleet share their data folder and keep a log each.
    init(dataFolder: URL, logFile: URL? = nil, extraArguments: [String] = []) {
        self.dataFolder = dataFolder
        port = 0
        self.logFile = logFile ?? dataFolder.appendingPathExtension("log")
        self.extraArguments = extraArguments
    }

    static func freePort() -> Int { ServerConfiguration.freeLoopbackPort() }

    /// Runs `body` against a server started on a fresh temporary data folder (`descent-<name>-<uuid>`),
    /// then kills it if it still runs and removes the folder and its log.
    static func withFresh<T>(_ name: String, _ body: (ServerProcess) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-\(name)-\(UUID().uuidString)")
        let server = ServerProcess(dataFolder: folder)
        defer {
            if let process = server.process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: folder)
            try? FileManager.default.removeItem(at: folder.appendingPathExtension("log"))
        }
        try await server.start()  // creates the folder
        return try await body(server)
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
            + extraArguments
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

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

