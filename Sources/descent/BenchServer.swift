import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
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
        let base = URL(string: "http://127.0.0.1:\(port)")!
        try await waitForHealth(base)

        let dataset = Bench.syntheticDataset(workload)
        let upload = try await request(base, "POST", "/v1/datasets?name=bench&format=npy&target=last&task=classification",
                                       body: Self.npyTable(dataset), contentType: "application/octet-stream")
        guard let datasetId = upload["id"]?.stringValue else { throw ValidationError("upload failed: \(upload.encodedString())") }
        let spec = Bench.specJSON(workload, epochs: 1 + epochs, datasetId: datasetId, replicas: replicas)
        let created = try await request(base, "POST", "/v1/jobs", body: Data(spec.encodedString().utf8))
        guard let jobId = created["id"]?.stringValue else { throw ValidationError("submit failed: \(created.encodedString())") }
        var job: JSONValue
        repeat {
            try await Task.sleep(for: .milliseconds(200))
            job = try await request(base, "GET", "/v1/jobs/\(jobId)")
        } while !["succeeded", "failed", "cancelled"].contains(job["status"]?.stringValue ?? "")
        guard job["status"]?.stringValue == "succeeded" else { throw ValidationError("the bench job did not succeed: \(job.encodedString())") }
        let rows = try await request(base, "GET", "/v1/jobs/\(jobId)/metrics")["epochs"]?.arrayValue ?? []
        let timed = rows.dropFirst()
        var samples = 0.0, seconds = 0.0
        for row in timed {
            let rowSeconds: Double = row["seconds"]?.numberValue ?? 0
            let rowSpeed: Double = row["samples_per_second"]?.numberValue ?? 0
            samples += rowSpeed * rowSeconds
            seconds += rowSeconds
        }

        let library = try Bench.measure(workload, threads: threads, epochs: epochs)["samples_per_s"]?.numberValue ?? 0
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var jobSeconds = 0.0
        if let started = job["started_at"]?.stringValue, let finished = job["finished_at"]?.stringValue,
           let start = formatter.date(from: started), let end = formatter.date(from: finished) {
            jobSeconds = end.timeIntervalSince(start)
        }
        return Result(server: Bench.rounded(samples / seconds, 1), library: library, jobSeconds: Bench.rounded(jobSeconds, 2))
    }

    private func waitForHealth(_ base: URL) async throws {
        for _ in 0..<300 {
            if let (_, response) = try? await URLSession.shared.data(from: base.appendingPathComponent("healthz")),
               (response as? HTTPURLResponse)?.statusCode == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("descent serve did not start")
    }

    private func request(_ base: URL, _ method: String, _ path: String, body: Data? = nil,
                         contentType: String = "application/json") async throws -> JSONValue {
        var request = URLRequest(url: URL(string: path, relativeTo: base)!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 600
        if body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, _) = try await URLSession.shared.data(for: request)
        return try JSONValue.parse(data)
    }

    /// The dataset as a float32 `.npy` table: the features, then the class index as the last column.
    static func npyTable(_ dataset: TabularDataset) -> Data {
        let columns = dataset.featureCount + 1
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dataset.rows), \(columns)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        var values = [Float](repeating: 0, count: dataset.rows * columns)
        for row in 0..<dataset.rows {
            for feature in 0..<dataset.featureCount { values[row * columns + feature] = dataset.features[row * dataset.featureCount + feature] }
            values[row * columns + dataset.featureCount] = Float(dataset.classIndices[row])
        }
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }
}
