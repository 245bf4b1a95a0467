import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `descent watch ID`: a live progress bar (epoch, loss, accuracy, ETA) until the job ends.
///
/// It follows the job's event stream (a URLSession data delegate: corelibs Foundation has no
/// incremental async body), reconnects with Last-Event-ID when the connection drops (a server
/// restart), and polls if the stream cannot be had.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a job with a live progress bar until it finishes.")
    @OptionGroup var options: ClientOptions
    @Argument var id: String
    @Option(help: "Seconds between refreshes.") var interval = 1.0

    func run() async throws {
        let client = try options.client
        let isTerminal = isatty(STDOUT_FILENO) == 1
        var lastLine = ""
        let id = self.id
        /// The job now; while the server is unreachable (a restart), tries again for up to `patience` seconds.
        func fetchJob(patience: TimeInterval = 120) async throws -> [String: Any] {
            let giveUp = Date().addingTimeInterval(patience)
            while true {
                do { return try await client.json("GET", "/v1/jobs/\(id)") } catch let failure as APIClient.Failure
                    where failure.isUnreachable && Date() < giveUp {
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        var job = try await failing { try await fetchJob(patience: 0) }
        let quiet = options.json
        func show() {
            guard !quiet else { return }
            let line = Self.render(job)
            if isTerminal { FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + line).utf8)) }
            else if line != lastLine { print(line) }
            lastLine = line
        }
        show()
        // Follow the event stream; on a dropped connection come back with Last-Event-ID, and fall
        // back to polling every `interval` seconds if the server cannot stream.
        var lastEpoch: Int?
        var failures = 0
        while !Self.isFinished(job) {
            do {
                let stream = ServerSentEventStream(client: client, path: "/v1/jobs/\(id)/events", lastEventId: lastEpoch.map(String.init))
                for try await event in stream.events() {
                    failures = 0
                    guard let data = event.data.data(using: .utf8),
                          let payload = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                    switch event.name {
                    case "epoch":
                        lastEpoch = payload["epoch"] as? Int ?? lastEpoch
                        job["epoch"] = payload["epoch"]
                        if let epochs = payload["epochs"] as? Int, let epoch = payload["epoch"] as? Int, epochs > 0 {
                            job["epochs"] = epochs
                            job["progress"] = Double(epoch) / Double(epochs)
                        }
                        job["latest"] = payload
                        job["status"] = "running"
                    case "status":
                        if let status = payload["status"] { job["status"] = status }
                    case "log":
                        if !quiet, let message = payload["message"] as? String {
                            if isTerminal { print() }
                            print("log: \(message)")
                        }
                    case "done":
                        job = try await failing { try await fetchJob() }
                    default: break
                    }
                    show()
                }
            } catch {
                failures += 1
                job = try await failing { try await fetchJob() }
                show()
                try await Task.sleep(for: .seconds(failures > 3 ? max(0.2, interval) : 1))
            }
            if !Self.isFinished(job) { job = try await failing { try await fetchJob() } }
        }
        show()
        if isTerminal && !quiet { print() }
        if !quiet, let error = job["error"] as? [String: Any] { print("error: \(error["message"] as? String ?? "")") }
        if !quiet, let result = job["result"] as? [String: Any] {
            let accuracy = (result["test_accuracy"] as? Double ?? result["val_accuracy"] as? Double).map { String(format: "%.4f", $0) } ?? "n/a"
            print("accuracy \(accuracy), \(result["parameters"] ?? 0) parameters, model \(result["model_bytes"] ?? 0) bytes")
        }
        if options.json { printJSON(job) }
        if job["status"] as? String != "succeeded" { throw ClientExit.jobDidNotSucceed }
    }

    static func isFinished(_ job: [String: Any]) -> Bool {
        ["succeeded", "failed", "cancelled"].contains(job["status"] as? String ?? "")
    }

    static func render(_ job: [String: Any]) -> String {
        let status = job["status"] as? String ?? "?"
        let epoch = job["epoch"] as? Int ?? 0, epochs = max(job["epochs"] as? Int ?? 1, 1)
        let progress = min(max(job["progress"] as? Double ?? 0, 0), 1)
        let width = 30
        let filled = Int(progress * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        var parts = ["\(status.padding(toLength: 9, withPad: " ", startingAt: 0)) [\(bar)] epoch \(epoch)/\(epochs)"]
        if let latest = job["latest"] as? [String: Any] {
            if let loss = latest["train_loss"] as? Double { parts.append(String(format: "loss %.4f", loss)) }
            if let loss = latest["val_loss"] as? Double { parts.append(String(format: "val_loss %.4f", loss)) }
            if let accuracy = latest["val_accuracy"] as? Double ?? latest["train_accuracy"] as? Double {
                parts.append(String(format: "acc %.3f", accuracy))
            }
        }
        if status == "running", epoch > 0, let started = (job["started_at"] as? String).flatMap(parseDate) {
            let elapsed = Date().timeIntervalSince(started)
            let remaining = elapsed / Double(epoch) * Double(epochs - epoch)
            parts.append(String(format: "ETA %02d:%02d", Int(remaining) / 60, Int(remaining) % 60))
        }
        return parts.joined(separator: "  ")
    }

    static func parseDate(_ text: String) -> Date? {
        (try? Date(text, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true)))
            ?? (try? Date(text, strategy: .iso8601))
    }
}
