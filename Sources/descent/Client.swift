import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(help: "The server (default: $DESCENT_SERVER or http://127.0.0.1:8080).")
    var server: String = ProcessInfo.processInfo.environment["DESCENT_SERVER"] ?? "http://127.0.0.1:8080"
    // No default value shown: --help must not print a token taken from the environment.
    @Option(help: "Bearer token for a server with auth on (default: $DESCENT_TOKEN).")
    var token: String?
    @Flag(help: "Print the server's JSON instead of text, for scripts.")
    var json = false

    var client: APIClient { get throws {
        guard let url = URL(string: server), url.scheme == "http" || url.scheme == "https" else {
            throw ValidationError("--server must be an http(s) URL, got \(server)")
        }
        let token = token ?? ProcessInfo.processInfo.environment["DESCENT_TOKEN"]
        return APIClient(base: url, token: token.flatMap { $0.isEmpty ? nil : $0 })
    }}
}

/// A thin HTTP client for the API (URLSession), turning error envelopes into readable failures.
struct APIClient {
    let base: URL
    let token: String?

    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// No answer at all (refused, timed out): worth trying again when following a job.
        var isUnreachable = false
    }

    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil) async throws -> (Data, Int) {
        guard let url = URL(string: path, relativeTo: base) else { throw Failure(description: "bad path \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 3600
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response): (Data, URLResponse)
        do { (data, response) = try await URLSession.shared.data(for: request) } catch {
            throw Failure(description: "cannot reach \(base.absoluteString): \(error.localizedDescription)", isUnreachable: true)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else { throw Failure(description: Self.describeError(data, status: status)) }
        return (data, status)
    }

    func json(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil) async throws -> [String: Any] {
        let (data, _) = try await request(method, path, body: body, contentType: contentType)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "unexpected answer from the server")
        }
        return object
    }

    static func describeError(_ data: Data, status: Int) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let error = object["error"] as? [String: Any] else {
            return "HTTP \(status): \(String(decoding: data.prefix(500), as: UTF8.self))"
        }
        var lines = ["HTTP \(status) \(error["code"] as? String ?? ""): \(error["message"] as? String ?? "")"]
        for detail in error["details"] as? [[String: Any]] ?? [] {
            lines.append("  \(detail["path"] as? String ?? ""): \(detail["message"] as? String ?? "")")
        }
        return lines.joined(separator: "\n")
    }
}

func printJSON(_ object: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Exit codes scripts can rely on (README § CLI).
enum ClientExit {
    /// The server answered with an error (4xx/5xx); its message is on standard error.
    static let refused = ExitCode(1)
    /// `watch`: the job ended failed or cancelled.
    static let jobDidNotSucceed = ExitCode(2)
    /// No answer from the server at all.
    static let unreachable = ExitCode(3)
}

func failing<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let failure as APIClient.Failure {
        FileHandle.standardError.write(Data("error: \(failure.description)\n".utf8))
        throw failure.isUnreachable ? ClientExit.unreachable : ClientExit.refused
    }
}

struct DatasetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "datasets", abstract: "Upload and list datasets.",
                                                    subcommands: [Upload.self, List.self])

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload a CSV file (header row; the target column names the labels).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The CSV file.") var file: String
        @Option(help: "Target column (default: the last).") var target: String?
        @Option(help: "Dataset name (default: the file name).") var name: String?
        @Option(help: "csv, idx or npy (default: from the file's extension, else csv).") var format: String?
        @Option(name: .customLong("labels-of"), help: "Attach this file as the labels of an uploaded idx/npy dataset.") var labelsOf: String?

        func run() async throws {
            let url = URL(fileURLWithPath: file)
            guard let data = FileManager.default.contents(atPath: url.path) else { throw ValidationError("cannot read \(file)") }
            var query = URLComponents()
            let extensionFormat = ["idx", "npy"].first { url.lastPathComponent.lowercased().contains(".\($0)") }
            query.queryItems = [URLQueryItem(name: "name", value: name ?? url.deletingPathExtension().lastPathComponent),
                                URLQueryItem(name: "format", value: format ?? extensionFormat ?? "csv")]
                + (target.map { [URLQueryItem(name: "target", value: $0)] } ?? [])
                + (labelsOf.map { [URLQueryItem(name: "labels_of", value: $0)] } ?? [])
            let client = try options.client
            let answer = try await failing { try await client.json("POST", "/v1/datasets?\(query.percentEncodedQuery ?? "")", body: data, contentType: "application/octet-stream") }
            printJSON(answer)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List uploaded datasets.")
        @OptionGroup var options: ClientOptions
        func run() async throws {
            let client = try options.client
            let answer = try await failing { try await client.json("GET", "/v1/datasets") }
            if options.json { return printJSON(answer) }
            for dataset in answer["datasets"] as? [[String: Any]] ?? [] {
                print("\(dataset["id"] ?? "")  \(dataset["name"] ?? "")  \(dataset["rows"] ?? 0) rows × \(dataset["features"] ?? 0) features  \(dataset["task"] ?? "")")
            }
        }
    }
}

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Submit a job spec (JSON file, or - for standard input).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The job spec.") var spec: String
    @Flag(help: "Only check the spec (POST /v1/jobs/validate).") var validateOnly = false

    func run() async throws {
        let data = spec == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: spec)
        guard let data else { throw ValidationError("cannot read \(spec)") }
        let client = try options.client
        let answer = try await failing {
            try await client.json("POST", validateOnly ? "/v1/jobs/validate" : "/v1/jobs", body: data, contentType: "application/json")
        }
        if validateOnly || options.json { printJSON(answer) } else { print(answer["id"] as? String ?? "") }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one job, or list recent jobs.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "A job id (omit to list jobs).") var id: String?

    func run() async throws {
        let client = try options.client
        if let id {
            printJSON(try await failing { try await client.json("GET", "/v1/jobs/\(id)") })
            return
        }
        let answer = try await failing { try await client.json("GET", "/v1/jobs?limit=50") }
        if options.json { return printJSON(answer) }
        for job in answer["jobs"] as? [[String: Any]] ?? [] {
            let latest = job["latest"] as? [String: Any]
            let loss = (latest?["val_loss"] as? Double ?? latest?["train_loss"] as? Double).map { String(format: "loss %.4f", $0) } ?? ""
            print("\(job["id"] ?? "")  \((job["status"] as? String ?? "").padding(toLength: 10, withPad: " ", startingAt: 0)) epoch \(job["epoch"] ?? 0)/\(job["epochs"] ?? 0)  \(loss)  \(job["name"] as? String ?? "")")
        }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")
    @OptionGroup var options: ClientOptions
    @Argument var id: String
    func run() async throws {
        let client = try options.client
        let answer = try await failing { try await client.json("POST", "/v1/jobs/\(id)/cancel") }
        if options.json { return printJSON(answer) }
        print("\(id): \(answer["status"] as? String ?? "")")
    }
}

struct Download: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a succeeded job's model (.safetensors, or .onnx with --format onnx).")
    @OptionGroup var options: ClientOptions
    @Argument var id: String
    @Option(name: .shortAndLong, help: "Output file (default: <id>.<format>, or <id>.<stage>.<format>).") var output: String?
    @Option(help: "A compression stage (trained, pruned, fine_tuned, quantized…; `descent report ID` lists them).") var stage: String?
    @Option(help: "safetensors (the saved file, torch layouts) or onnx (a graph onnxruntime runs, standardization included).")
    var format: String = "safetensors"

    func run() async throws {
        let client = try options.client
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+#")
        func encoded(_ value: String) -> String { value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value }
        var parameters: [String] = []
        if let stage { parameters.append("stage=\(encoded(stage))") }
        if format != "safetensors" { parameters.append("format=\(encoded(format))") }
        let query = parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
        let (data, _) = try await failing { try await client.request("GET", "/v1/jobs/\(id)/model\(query)") }
        let path = output ?? "\(id)\(stage.map { ".\($0)" } ?? "").\(format)"
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        if options.json { return printJSON(["file": path, "bytes": data.count]) }
        print("wrote \(path) (\(data.count) bytes)")
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a succeeded job's compression stages: size, sparsity, accuracy, latency.")
    @OptionGroup var options: ClientOptions
    @Argument var id: String

    func run() async throws {
        let client = try options.client
        let answer = try await failing { try await client.json("GET", "/v1/jobs/\(id)/report") }
        if options.json { return printJSON(answer) }
        let stages = answer["stages"] as? [[String: Any]] ?? []
        let firstBytes = stages.first?["bytes"] as? Int
        print("stage".padding(toLength: 12, withPad: " ", startingAt: 0) + "  parameters     nonzero        bytes  smaller  test acc.  µs/sample")
        for stage in stages {
            let name = (stage["name"] as? String ?? "").padding(toLength: 12, withPad: " ", startingAt: 0)
            let bytes = stage["bytes"] as? Int
            let smaller = bytes.flatMap { b in firstBytes.map { String(format: "%6.2f×", Double($0) / Double(max(b, 1))) } } ?? "      —"
            let accuracy = (stage["test_accuracy"] as? Double).map { String(format: "%8.2f%%", $0 * 100) } ?? "        —"
            let latency = (stage["latency_ms_per_sample"] as? Double).map { String(format: "%9.1f", $0 * 1000) } ?? "        —"
            print("\(name)  \(pad(stage["parameters"]))  \(pad(stage["nonzero"]))  \(pad(bytes, width: 11))  \(smaller)  \(accuracy)  \(latency)")
        }
        if let sensitivity = answer["sensitivity"] as? [String: [[String: Any]]] {
            let layers = answer["sensitivity_layers"] as? [String] ?? sensitivity.keys.sorted()
            print("\nsensitivity (validation accuracy with one layer pruned):")
            for layer in layers {
                let points = (sensitivity[layer] ?? []).map { point in
                    let sparsity = point["sparsity"] as? Double ?? 0
                    let accuracy = (point["val_accuracy"] as? Double).map { String(format: "%.3f", $0) }
                        ?? (point["val_loss"] as? Double).map { String(format: "loss %.4f", $0) } ?? "—"
                    return String(format: "%.2f→", sparsity) + accuracy
                }
                print("  \(layer): \(points.joined(separator: "  "))")
            }
        }
    }

    private func pad(_ value: Any?, width: Int = 10) -> String {
        let text = (value as? Int).map(String.init) ?? "—"
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
