import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Server

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server: HTTP API, status page and the worker pool.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(name: .customLong("data-dir"), help: "Data folder: descent.sqlite, datasets/, models/.") var dataDirectory = "./data"
    @Option(help: "Jobs trained at once.") var workers = 1
    @Option(name: .customLong("blas-threads"), help: "OpenBLAS threads (default: cores / workers).") var blasThreads: Int?
    @Option(name: .customLong("max-upload-bytes"), help: "Largest dataset upload.") var maxUploadBytes = 512 * 1024 * 1024
    @Option(help: "Authentication: off (the only mode so far).") var auth = "off"
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.") var logLevel = "info"

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be between 1 and 64") }
        if let blasThreads, !(1...256).contains(blasThreads) { throw ValidationError("--blas-threads must be between 1 and 256") }
        guard maxUploadBytes > 0 else { throw ValidationError("--max-upload-bytes must be positive") }
        guard auth == "off" else { throw ValidationError("--auth on is not supported yet; tokens come with a later version") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
    }

    func run() async throws {
        var configuration = ServerConfiguration(dataDirectory: URL(fileURLWithPath: dataDirectory, isDirectory: true))
        configuration.host = host
        configuration.port = port
        configuration.workerCount = workers
        configuration.blasThreads = blasThreads
        configuration.maxUploadBytes = maxUploadBytes
        configuration.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let app = try await buildApplication(configuration)
        try await app.runService()
    }
}
