import ArgumentParser
import Foundation
import Datasets
import NeuralNetwork
import Server

/// `descent bench --through-server`: the workload trained as a job of a `descent serve` started for
/// it (its own process, data folder and port), the data uploaded as `.npy` like a user's. The job's
/// samples/s come from its metrics rows (the trainer's own clock, timed epochs only), measured as
/// the library's are, so the ratio shows what the server costs while a job trains.
struct ServerThroughput {
    let workload: Bench.Workload
    let executable: URL
    let epochs: Int
    let threads: Int
    var replicas = 1
    /// `distributed.processes`: the job runs on that many MPI ranks (the server's mpirun).
    var processes: Int? = nil

    struct Result { let server: Double; let library: Double; let jobSeconds: Double }

    func measure() async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = ServerConfiguration.freeLoopbackPort()
        let server = Process()
        server.executableURL = executable
        server.arguments = ["serve", "--port", "\(port)", "--data-dir", folder.path, "--blas-threads", "\(threads)", "--log-level", "warning"]
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        let client = APIClient(base: URL(string: "http://127.0.0.1:\(port)")!, token: nil)
        try await waitForHealth(client)

        let dataset = Bench.syntheticDataset(workload)
        let upload = try await request(client, "POST", "/v1/datasets?name=bench&format=npy&target=last&task=classification",
                                       body: Self.npyTable(dataset), contentType: "application/octet-stream")
        guard let datasetId = upload["id"]?.string else { throw ValidationError("upload failed: \(upload.encodedString())") }
        let spec = Bench.specJSON(workload, epochs: 1 + epochs, datasetId: datasetId, replicas: replicas, processes: processes)
        let created = try await request(client, "POST", "/v1/jobs", body: Data(spec.encodedString().utf8))
        guard let jobId = created["id"]?.string else { throw ValidationError("submit failed: \(created.encodedString())") }
        var job: JSONValue
        repeat {
            try await Task.sleep(for: .milliseconds(200))
            job = try await request(client, "GET", "/v1/jobs/\(jobId)")
        } while !["succeeded", "failed", "cancelled"].contains(job["status"]?.string ?? "")
        guard job["status"]?.string == "succeeded" else { throw ValidationError("the bench job did not succeed: \(job.encodedString())") }
        let rows = try await request(client, "GET", "/v1/jobs/\(jobId)/metrics")["epochs"]?.array ?? []
        let timed = rows.dropFirst()
        var samples = 0.0, seconds = 0.0
        for row in timed {
            let rowSeconds: Double = row["seconds"]?.number ?? 0
            let rowSpeed: Double = row["samples_per_second"]?.number ?? 0
            samples += rowSpeed * rowSeconds
            seconds += rowSeconds
        }

        let library = try Bench.measure(workload, threads: threads, epochs: epochs)["samples_per_s"]?.number ?? 0
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var jobSeconds = 0.0
        if let started = job["started_at"]?.string, let finished = job["finished_at"]?.string,
           let start = formatter.date(from: started), let end = formatter.date(from: finished) {
            jobSeconds = end.timeIntervalSince(start)
        }
        return Result(server: Bench.rounded(samples / seconds, 1), library: library, jobSeconds: Bench.rounded(jobSeconds, 2))
    }

    private func waitForHealth(_ client: APIClient) async throws {
        for _ in 0..<300 {
            if (try? await client.request("GET", "/healthz")) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("descent serve did not start")
    }

    /// A JSON answer of the server (a 4xx or 5xx throws, with the server's message).
    private func request(_ client: APIClient, _ method: String, _ path: String, body: Data? = nil,
                         contentType: String = "application/json") async throws -> JSONValue {
        try JSONValue.parse(try await client.request(method, path, body: body, contentType: contentType).0)
    }

    /// The dataset as a float32 `.npy` table: the features, then the class index as the last column.
    static func npyTable(_ dataset: TabularDataset) -> Data {
        let columns = dataset.featureCount + 1
        var values = [Float](repeating: 0, count: dataset.rows * columns)
        for row in 0..<dataset.rows {
            for feature in 0..<dataset.featureCount { values[row * columns + feature] = dataset.features[row * dataset.featureCount + feature] }
            values[row * columns + dataset.featureCount] = Float(dataset.classIndices[row])
        }
        return NPYWriter.float32(shape: [dataset.rows, columns], values: values)
    }
}
