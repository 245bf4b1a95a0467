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
    /// Set when `extraArguments` make it serve HTTPS (`--tls-cert`): the certificate to trust, and
    /// readiness is then asked over https with curl.
    var trustedCertificate: URL?
    /// A program that starts the server (`prlimit --nofile=160:160`): it is run with the server's command line after it.
    var launcher: [String] = []

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
    /// `arguments` go to `descent serve`; `trusting` is the certificate of a server started with `--tls-cert`.
    static func withFresh<T>(_ name: String, arguments: [String] = [], trusting certificate: URL? = nil, launcher: [String] = [],
                             _ body: (ServerProcess) async throws -> T) async throws -> T {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-\(name)-\(UUID().uuidString)")
        let server = ServerProcess(dataFolder: folder, extraArguments: arguments)
        server.trustedCertificate = certificate
        server.launcher = launcher
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
        let command = launcher + [Self.executable.path, "serve", "--port", String(port), "--data-dir", dataFolder.path,
                                  "--log-level", "debug", "--blas-threads", "1"] + extraArguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
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
            if let trustedCertificate {
                let answer = try? Curl.fetch("GET", "https://localhost:\(port)/healthz", options: ["--cacert", trustedCertificate.path, "--max-time", "2"])
                if answer?.status == 200 { return true }
            } else if (try? await request("GET", "/healthz", timeout: 2).status) == 200 {
                return true
            }
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

    /// A JSON answer; waits up to a minute, as the whole suite shares two cores with the server.
    func json(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async throws -> [String: Any] {
        let (status, data) = try await request(method, path, body: body, contentType: contentType, timeout: 60)
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

/// curl, which sends exactly the headers it is given and speaks TLS with a certificate of our choosing.
enum Curl {
    struct Answer {
        let status: Int
        /// Lowercased names.
        let headers: [String: String]
        let body: String
    }

    /// `curl -s -D - -X <method> <url> -H … [--data-binary body] <options>`: the status, the headers and the body.
    static func fetch(_ method: String, _ url: String, headers: [String] = [], body: String? = nil, options: [String] = []) throws -> Answer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-D", "-", "-X", method, url, "--max-time", "20"]
        for header in headers { arguments += ["-H", header] }
        if let body { arguments += ["--data-binary", body] }
        process.arguments = arguments + options
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else {
            throw ProcessFailure("curl \(url) answered no headers (exit \(process.terminationStatus)): \(text)")
        }
        let lines = text[..<split.lowerBound].split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
            throw ProcessFailure("curl \(url): no status line in \(text.prefix(200))")
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: status, headers: fields, body: String(text[split.upperBound...]))
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

