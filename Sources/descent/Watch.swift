import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `descent watch ID`: a live progress bar (epoch, loss, accuracy, ETA) until the job ends.
///
/// It polls the job every second rather than holding an SSE stream: URLSession on Linux has no
/// incremental body delivery for async/await, and a poll survives server restarts.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a job with a live progress bar until it finishes.")
    @OptionGroup var options: ClientOptions
    @Argument var id: String
    @Option(help: "Seconds between refreshes.") var interval = 1.0

    func run() async throws {
        let client = try options.client
        let isTerminal = isatty(STDOUT_FILENO) == 1
        var lastLine = ""
        while true {
            let job = try await failing { try await client.json("GET", "/v1/jobs/\(id)") }
            let status = job["status"] as? String ?? "?"
            let line = Self.render(job)
            if isTerminal { FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + line).utf8)) }
            else if line != lastLine { print(line) }
            lastLine = line
            if ["succeeded", "failed", "cancelled"].contains(status) {
                if isTerminal { print() }
                if let error = job["error"] as? [String: Any] { print("error: \(error["message"] as? String ?? "")") }
                if let result = job["result"] as? [String: Any] {
                    let accuracy = (result["test_accuracy"] as? Double ?? result["val_accuracy"] as? Double).map { String(format: "%.4f", $0) } ?? "n/a"
                    print("accuracy \(accuracy), \(result["parameters"] ?? 0) parameters, model \(result["model_bytes"] ?? 0) bytes")
                }
                if status != "succeeded" { throw ExitCode.failure }
                return
            }
            try await Task.sleep(for: .seconds(max(0.2, interval)))
        }
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
