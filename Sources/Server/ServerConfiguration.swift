import Foundation
import Logging

/// Everything `descent serve` can be told; tests build one with an in-memory database and a
/// temporary data folder.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Holds `descent.sqlite`, `datasets/` and `models/`.
    public var dataDirectory: URL
    /// Nil: `<dataDirectory>/descent.sqlite`. `":memory:"`: an in-memory database (tests).
    public var databasePath: String?
    public var workerCount = 1
    /// Waits before each retry of a failed webhook delivery (their count is the number of retries).
    public var webhookRetryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30), .seconds(120)]
    public var blasThreads: Int?
    public var maxUploadBytes = 512 * 1024 * 1024
    /// Largest JSON body (job specs, predictions).
    public var maxJSONBytes = 16 * 1024 * 1024
    /// Tests of the HTTP layer alone can leave the workers off so jobs stay queued.
    public var runsWorkers = true
    public var logLevel: Logger.Level = .info

    public init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
    }
}
