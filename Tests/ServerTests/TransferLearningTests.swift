import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// `init.from_job` through the API: checked at submission, applied by the worker.
@Suite("Transfer learning through the API")
struct TransferLearningAPITests {
    @Test("a job starts from a finished job's weights, keeps frozen layers, and may resize its output layer")
    func fineTuning() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let source = try await api.submit(Specs.moons(epochs: 3))
            let finished = try await api.waitUntilFinished(source)
            #expect(finished["status"] == "succeeded")
            // Same hidden layer, a 3-class output on blobs: the head is re-initialized, layer 0 frozen.
            let fineTune = try JSONValue("""
                {"dataset": {"builtin": "blobs", "samples": 300, "classes": 3, "seed": 2},
                 "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]},
                 "init": {"from_job": "\(source)", "freeze": [0]}, "training": {"epochs": 3}}
                """)
            let job = try await api.waitUntilFinished(try await api.submit(fineTune))
            #expect(job["status"] == "succeeded", "\(job)")
            #expect(job["spec"]?["init"] == ["from_job": .string(source), "freeze": [0]])
            let sourceModel = try SafeTensorsFile.parse(Data(try await api.get("/v1/jobs/\(source)/model").data))
            let tunedModel = try SafeTensorsFile.parse(Data(try await api.get("/v1/jobs/\(job["id"]!.string!)/model").data))
            #expect(tunedModel.tensor(named: "layers.0.weight")?.values == sourceModel.tensor(named: "layers.0.weight")?.values)
            #expect(tunedModel.tensor(named: "layers.1.weight")?.shape == [3, 8])
        }
    }

    @Test("an unknown, unfinished or mismatched source job is a 422 naming the problem, and nothing is queued")
    func refusals() async throws {
        try await withServer { api in
            let unknown = try await api.post("/v1/jobs", json: try Specs.moons(extra: #""init": {"from_job": "job_missing"}"#))
            try expectError(unknown, .unprocessableContent, naming: ["init.from_job", "job_missing"])
            let queued = try await api.submit(Specs.moons())
            let unfinished = try await api.post("/v1/jobs", json: try Specs.moons(extra: #""init": {"from_job": "\#(queued)"}"#))
            try expectError(unfinished, .unprocessableContent, naming: ["init.from_job", "queued"])
            let jobs = try await api.get("/v1/jobs").json()["jobs"]?.array ?? []
            #expect(jobs.count == 1)
        }
    }
}
