import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// Jobs trained by the worker pool of the application (one worker), watched through the API.
@Suite("Training through the worker pool")
struct WorkerTrainingTests {
    static let workers = ServerOptions(runsWorkers: true)

    @Test("A builtin moons job goes from queued through running to succeeded, with one metrics row per epoch")
    func moonsJobSucceeds() async throws {
        try await withServer(Self.workers) { api in
            let submitted = try await api.post("/v1/jobs", json: try Specs.moons(epochs: 3))
            #expect(submitted.status == .created)
            #expect(try submitted.json()["status"] == "queued")
            let id = try #require(try submitted.json()["id"]?.string)

            var seen: [String] = ["queued"]
            let job = try await api.waitForJob(id) { job in
                let status = job["status"]?.string ?? "?"
                if seen.last != status { seen.append(status) }
                return ["succeeded", "failed", "cancelled"].contains(status)
            }
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            #expect(["queued", "running", "succeeded"].starts(with: seen.filter { $0 != "succeeded" }) && seen.last == "succeeded",
                    "statuses seen: \(seen)")
            #expect(job["progress"]?.number == 1)
            #expect(job["epoch"]?.int == 3)
            #expect(job["attempt"]?.int == 1)
            #expect(job["error"] == .null)
            #expect(job["started_at"]?.string != nil)
            #expect(job["finished_at"]?.string != nil)
            #expect(job["latest"]?["train_loss"]?.number != nil)
            #expect(job["latest"]?["val_accuracy"]?.number != nil)
            #expect(job["result"]?["parameters"]?.int == 42)
            #expect((job["result"]?["model_bytes"]?.int ?? 0) > 42 * 4)

            let metrics = try await api.get("/v1/jobs/\(id)/metrics")
            #expect(metrics.status == .ok)
            let rows = try #require(try metrics.json()["epochs"]?.array)
            #expect(rows.compactMap { $0["epoch"]?.int } == [1, 2, 3])
            let fields = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "grad_norm", "penalty", "sparsity",
                          "seconds", "samples_per_second", "val_class_recall", "val_macro_f1"]
            for row in rows {
                #expect(row.object.map { Set($0.keys) } == Set(fields))
                #expect(row["train_loss"]?.number?.isFinite == true)
                #expect(row["lr"]?.number == 0.001)
                #expect(row["val_class_recall"]?.array?.count == 2, "moons: one recall per class")
            }

            // A finished job's stream is its status, then done.
            let events = try ServerSentEvent.parse(try await api.get("/v1/jobs/\(id)/events").text)
            #expect(events.map(\.event) == ["status", "done"])
            #expect(events.first?.data["status"] == "succeeded")
            #expect(events.first?.data["epoch"]?.int == 3)

            // Its model downloads and predicts.
            let model = try await api.get("/v1/jobs/\(id)/model")
            #expect(model.status == .ok)
            #expect(model.headers[.contentType] == "application/octet-stream")
            #expect(model.headers[.contentDisposition]?.contains("moons-test.safetensors") == true)
            #expect(model.body.readableBytes == job["result"]?["model_bytes"]?.int)
            let prediction = try await api.post("/v1/jobs/\(id)/predict", body: #"{"inputs": [[0, 0], [1.5, -0.5], [-1, 1]]}"#)
            #expect(prediction.status == .ok, "\(prediction.text)")
            let outputs = try #require(try prediction.json()["outputs"]?.array)
            #expect(outputs.count == 3)
            for row in outputs {
                let probabilities = row.array?.compactMap(\.number) ?? []
                #expect(probabilities.count == 2)
                #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
            }
            let predictions = try prediction.json()["predictions"]?.array?.compactMap(\.string) ?? []
            #expect(predictions.count == 3 && predictions.allSatisfy { ["0", "1"].contains($0) }, "\(prediction.text)")
            let wrongWidth = try await api.post("/v1/jobs/\(id)/predict", body: #"{"inputs": [[0, 0, 0]]}"#)
            try expectError(wrongWidth, .unprocessableContent, code: "invalid", naming: ["inputs[0]", "takes 2"])

            // A finished job can be deleted, with its model file.
            let modelFile = api.folder.appendingPathComponent("models/\(id).safetensors")
            #expect(FileManager.default.fileExists(atPath: modelFile.path))
            #expect(try await api.delete("/v1/jobs/\(id)").status == .noContent)
            #expect(!FileManager.default.fileExists(atPath: modelFile.path))
            try expectError(try await api.get("/v1/jobs/\(id)/metrics"), .notFound)
        }
    }

    @Test("A job with distributed replicas trains on them through a worker and shows them in its spec")
    func replicatedJobSucceeds() async throws {
        try await withServer(Self.workers) { api in
            let id = try await api.submit(try Specs.moons(epochs: 2, extra: #""distributed": {"replicas": 2}"#))
            #expect(try await api.job(id)["spec"]?["distributed"] == ["replicas": 2, "mode": "sync"])
            let job = try await api.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"]?.string ?? "?") }
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            #expect(job["epoch"]?.int == 2)
            #expect(job["result"]?["parameters"]?.int == 42)
        }
    }

    @Test("The event stream of a job watched while it runs tells its status, every epoch and then done")
    func eventsOfRunningJob() async throws {
        try await withServer(Self.workers) { api in
            // The one worker is busy with the blocker, so the watched job is still queued when its stream opens.
            let blocker = try await api.submit(try Specs.moons(epochs: 100_000))
            _ = try await api.waitForJob(blocker) { $0["status"] == "running" }
            let watched = try await api.submit(try Specs.moons(epochs: 4))
            #expect(try await api.job(watched)["status"] == "queued")

            async let streamed = api.get("/v1/jobs/\(watched)/events")
            // The stream has subscribed once its handler has answered, which is when its request is counted.
            let deadline = ContinuousClock.now + .seconds(30)
            while prometheusValue(try await api.get("/metrics").text, "descent_http_requests_total",
                                  ["route": "/v1/jobs/{id}/events", "method": "GET", "status": "200"]) != 1 {
                guard ContinuousClock.now < deadline else { throw TimedOut() }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await api.post("/v1/jobs/\(blocker)/cancel").status == .accepted)

            let response = try await streamed
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/event-stream")
            let events = try ServerSentEvent.parse(response.text)
            #expect(events.map(\.event) == ["status", "status", "log", "epoch", "epoch", "epoch", "epoch", "done"], "\(response.text)")
            #expect(events.first?.data["status"] == "queued")
            // How long the job waited for its first trained batch (a worker was busy with the blocker until the cancel).
            let firstBatch = events.first { $0.event == "log" }?.data["message"]?.string ?? ""
            #expect(firstBatch.hasPrefix("first batch trained ") && firstBatch.hasSuffix(" ms after submission"), "\(firstBatch)")
            #expect(events.dropFirst().first?.data["status"] == "running")
            let epochs = events.filter { $0.event == "epoch" }
            #expect(epochs.compactMap { $0.data["epoch"]?.int } == [1, 2, 3, 4])
            #expect(epochs.allSatisfy { $0.data["epochs"]?.int == 4 && $0.data["train_loss"]?.number != nil })
            #expect(events.last?.data["status"] == "succeeded")
            #expect(events.last?.data["id"] == .string(watched))

            #expect(try await api.job(blocker)["status"] == "cancelled")
        }
    }

    @Test("Cancelling a running job answers 202 and stops it at the next batch: it ends cancelled")
    func cancelRunningJob() async throws {
        try await withServer(Self.workers) { api in
            let id = try await api.submit(try Specs.moons(epochs: 100_000))
            _ = try await api.waitForJob(id) { $0["status"] == "running" && ($0["epoch"]?.int ?? 0) >= 1 }
            let response = try await api.post("/v1/jobs/\(id)/cancel")
            #expect(response.status == .accepted, "\(response.text)")
            #expect(["running", "cancelled"].contains(try response.json()["status"]?.string ?? ""))

            let job = try await api.waitUntilFinished(id, timeout: .seconds(30))
            #expect(job["status"] == "cancelled")
            #expect(job["error"] == .null)
            #expect(job["result"] == .null)
            let epoch = try #require(job["epoch"]?.int)
            #expect(epoch >= 1 && epoch < 100_000)
            #expect(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array?.count == epoch)
            try expectError(try await api.get("/v1/jobs/\(id)/model"), .conflict, naming: ["cancelled"])
            try expectError(try await api.post("/v1/jobs/\(id)/cancel"), .conflict, naming: ["cancelled"])

            // The worker is free again.
            let next = try await api.submit(try Specs.moons(epochs: 1))
            #expect(try await api.waitUntilFinished(next)["status"] == "succeeded")
        }
    }

    @Test("A job whose loss turns NaN fails with a message naming the epoch, and the server keeps serving")
    func divergingJobFails() async throws {
        try await withServer(Self.workers) { api in
            let spec = try Specs.moons(epochs: 5, extra: #""preprocessing": {"standardize": false}, "optimizer": {"type": "sgd", "lr": 1e30}"#)
            let id = try await api.submit(spec)
            let job = try await api.waitUntilFinished(id)
            #expect(job["status"] == "failed", "\(job.encodedString())")
            #expect(job["error"]?["code"] == "diverged")
            let message = try #require(job["error"]?["message"]?.string)
            let epoch = try #require(message.firstMatch(of: /in epoch (\d+)/).flatMap { Int($0.1) }, "no epoch in: \(message)")
            #expect((1...5).contains(epoch))
            #expect(message.contains("optimizer.lr"))
            #expect(job["result"] == .null)
            try expectError(try await api.get("/v1/jobs/\(id)/model"), .conflict, naming: ["failed"])

            let events = try ServerSentEvent.parse(try await api.get("/v1/jobs/\(id)/events").text)
            #expect(events.map(\.event) == ["status", "done"])
            #expect(events.last?.data["status"] == "failed")

            // Still serving, and still training.
            #expect(try await api.get("/healthz").status == .ok)
            let next = try await api.submit(try Specs.moons(epochs: 2))
            #expect(try await api.waitUntilFinished(next)["status"] == "succeeded")
            let metrics = try await api.get("/metrics").text
            #expect(prometheusValue(metrics, "descent_jobs", ["status": "failed"]) == 1)
            #expect(prometheusValue(metrics, "descent_jobs", ["status": "succeeded"]) == 1)
        }
    }
}
