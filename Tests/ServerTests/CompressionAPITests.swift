import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// The compression pipeline and distillation through the API (API.md § Jobs `compression`,
/// `distillation`, `GET /v1/jobs/{id}/report`, § Models `?stage=`), on tiny moons jobs.
@Suite("Compression and distillation through the API")
struct CompressionAPITests {
    static let workers = ServerOptions(runsWorkers: true)

    /// 2 → 8 (relu) → 2 on moons: 42 parameters, 32 of them weights (16 per dense layer).
    static let parameters = 42
    static let weightsPerLayer = 16
    static let pipelineStages = ["trained", "pruned", "fine_tuned", "quantized"]

    /// A moons job of `epochs` epochs with a test split (so every stage has a test accuracy) and `compression`.
    static func spec(name: String = "compressed", epochs: Int = 2, compression: String? = nil, extra: String = "") throws -> JSONValue {
        let pipeline = compression.map { #", "compression": \#($0)"# } ?? ""
        return try JSONValue("""
            {"name": "\(name)", "dataset": {"builtin": "moons", "samples": 400, "seed": 1}, "test": {"split": 0.2},
             "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]},
             "training": {"epochs": \(epochs), "batch_size": 32}\(pipeline)\(extra)}
            """)
    }

    /// Sensitivity analysis at three sparsities, magnitude pruning of half the weights with one
    /// fine-tuning epoch, then 8-bit post-training quantization.
    static let pipeline = """
        [{"type": "sensitivity_analysis", "sparsities": [0, 0.5, 0.9]},
         {"type": "prune", "amount": 0.5, "fine_tune_epochs": 1},
         {"type": "quantize", "bits": 8}]
        """

    /// Submits the pipeline job, waits for it and expects it succeeded; returns its id and final state.
    static func compressedJob(_ api: APIClient, sourceLocation: SourceLocation = #_sourceLocation) async throws -> (id: String, job: JSONValue) {
        let id = try await api.submit(try spec(compression: pipeline), sourceLocation: sourceLocation)
        let job = try await api.waitUntilFinished(id, sourceLocation: sourceLocation)
        #expect(job["status"] == "succeeded", "\(job.encodedString())", sourceLocation: sourceLocation)
        return (id, job)
    }

    /// `GET /v1/jobs/{id}/report`, expecting 200 JSON.
    static func report(_ api: APIClient, _ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        let response = try await api.get("/v1/jobs/\(id)/report")
        #expect(response.status == .ok, "\(response.text)", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
        return try response.json()
    }

    /// The files of the data folder's `models/` that belong to job `id`.
    static func modelFiles(_ api: APIClient, of id: String) throws -> [String] {
        let models = api.folder.appendingPathComponent("models", isDirectory: true)
        return try FileManager.default.contentsOfDirectory(atPath: models.path).filter { $0.hasPrefix("\(id).") }.sorted()
    }

    /// How many values of a tensor are exactly zero.
    static func zeros(_ file: SafeTensorsFile, _ name: String) -> Int? {
        file.tensor(named: name).map { $0.values.filter { $0 == 0 }.count }
    }

    // MARK: The pipeline

    @Test("A job with sensitivity analysis, pruning with fine-tuning and quantization succeeds and reports its four stages in order")
    func pipelineReport() async throws {
        try await withServer(Self.workers) { api in
            let (id, job) = try await Self.compressedJob(api)
            let report = try await Self.report(api, id)
            let stages = try #require(report["stages"]?.array, "\(report)")
            #expect(stages.compactMap { $0["name"]?.string } == Self.pipelineStages, "\(report)")
            for stage in stages {
                let name = stage["name"]?.string ?? "?"
                #expect(stage["parameters"]?.int == Self.parameters, "\(name): unstructured pruning keeps the shapes")
                let nonzero = try #require(stage["nonzero"]?.int, "\(name): \(stage)")
                #expect(nonzero > 0 && nonzero <= Self.parameters, "\(name): \(nonzero)")
                #expect((stage["bytes"]?.int ?? 0) > 0, "\(name): \(stage)")
                let accuracy = try #require(stage["test_accuracy"]?.number, "\(name): \(stage)")
                #expect((0...1).contains(accuracy), "\(name): \(accuracy)")
                let latency = try #require(stage["latency_ms_per_sample"]?.number, "\(name): \(stage)")
                #expect(latency > 0 && latency.isFinite, "\(name): \(latency)")
            }
            try #require(stages.count == 4)
            let (trained, pruned, fineTuned, quantized) = (stages[0], stages[1], stages[2], stages[3])
            // Pruning takes half of each layer's 16 weights (local scope); biases are not pruned.
            let prunedNonzero = try #require(pruned["nonzero"]?.int)
            let trainedNonzero = try #require(trained["nonzero"]?.int)
            #expect(trainedNonzero - prunedNonzero == 2 * Self.weightsPerLayer / 2, "trained \(trainedNonzero), pruned \(prunedNonzero)")
            // Fine-tuning holds the masks: the pruned weights stay zero.
            #expect((fineTuned["nonzero"]?.int ?? .max) <= prunedNonzero, "\(fineTuned)")
            #expect(pruned["bytes"]?.int == trained["bytes"]?.int, "an unstructured pruned model is stored dense")

            // The job's result describes the served model: the last stage.
            #expect(job["result"]?["model_bytes"] == quantized["bytes"])
            #expect(job["result"]?["stage"] == "quantized")
            #expect(job["result"]?["parameters"]?.int == Self.parameters)
            #expect(job["result"]?["trained_model_bytes"] == trained["bytes"])
            #expect(job["result"]?["test_accuracy"] == quantized["test_accuracy"])
            #expect(job["result"]?["test_loss"] == quantized["test_loss"])
            #expect(job["result"]?["val_accuracy"] == quantized["val_accuracy"], "\(job["result"] ?? .null)")
            #expect(job["result"]?["test_macro_f1"]?.number != nil, "\(job["result"] ?? .null)")
        }
    }

    @Test("The sensitivity table has a row per prunable layer and a point per analysed sparsity")
    func sensitivityTable() async throws {
        try await withServer(Self.workers) { api in
            let (id, _) = try await Self.compressedJob(api)
            let report = try await Self.report(api, id)
            let table = try #require(report["sensitivity"]?.object, "\(report)")
            #expect(Set(table.keys) == ["layers.0", "layers.1"], "\(report)")
            #expect(report["sensitivity_layers"] == ["layers.0", "layers.1"])
            // At sparsity 0 every row measures the unpruned trained model.
            let trainedAccuracy = try #require(report["stages"]?[0]?["val_accuracy"]?.number, "\(report)")
            for (layer, row) in table {
                #expect(row[0]?["val_accuracy"]?.number == trainedAccuracy, "\(layer): \(row)")
                #expect(row[0]?["val_loss"] == table["layers.0"]?[0]?["val_loss"], "\(layer): \(row)")
                let points = try #require(row.array, "\(layer)")
                #expect(points.compactMap { $0["sparsity"]?.number } == [0, 0.5, 0.9], "\(layer): \(row)")
                for point in points {
                    let accuracy = try #require(point["val_accuracy"]?.number, "\(layer): \(point)")
                    #expect((0...1).contains(accuracy))
                    #expect(point["val_loss"]?.number?.isFinite == true, "\(layer): \(point)")
                }
            }
        }
    }

    @Test("Each stage downloads as a safetensors file of the report's size; the default model is the last stage")
    func stageDownloads() async throws {
        try await withServer(Self.workers) { api in
            let (id, _) = try await Self.compressedJob(api)
            let stages = try #require(try await Self.report(api, id)["stages"]?.array)
            var files: [String: SafeTensorsFile] = [:]
            var bodies: [String: Data] = [:]
            for stage in stages {
                let name = try #require(stage["name"]?.string)
                let response = try await api.get("/v1/jobs/\(id)/model?stage=\(name)")
                #expect(response.status == .ok, "\(name): \(response.text)")
                #expect(response.headers[.contentType] == "application/octet-stream")
                #expect(response.headers[.contentDisposition]?.contains("compressed.\(name).safetensors") == true,
                        "\(response.headers[.contentDisposition] ?? "no Content-Disposition")")
                #expect(response.body.readableBytes == stage["bytes"]?.int, "\(name)")
                let file = try SafeTensorsFile.parse(response.data)
                #expect(file.metadata["format"] == "descent")
                files[name] = file
                bodies[name] = response.data
            }
            #expect(Set(files.keys) == Set(Self.pipelineStages))

            // The trained model is dense and unquantized.
            let trained = try #require(files["trained"])
            #expect(trained.tensor(named: "layers.0.weight")?.shape == [8, 2])
            #expect(trained.metadata["quantization"] == nil)
            // Pruning zeroed half of each layer's weights (local scope), and fine-tuning kept them zero.
            for name in ["pruned", "fine_tuned"] {
                let file = try #require(files[name])
                for layer in ["layers.0.weight", "layers.1.weight"] {
                    #expect(Self.zeros(file, layer) == Self.weightsPerLayer / 2, "\(name) \(layer)")
                }
            }
            // The report's nonzero counts what the file holds.
            for (index, name) in ["trained", "pruned", "fine_tuned"].enumerated() {
                let file = try #require(files[name])
                let nonzero = file.tensors.reduce(0) { $0 + $1.values.filter { $0 != 0 }.count }
                #expect(stages[index]["nonzero"]?.int == nonzero, "\(name)")
            }

            // The quantized model stores its weights as U8 codes with their scale and zero point.
            let quantized = try #require(files["quantized"])
            #expect(quantized.metadata["quantization"] != nil)
            for layer in ["layers.0.weight", "layers.1.weight"] {
                let codes = try #require(quantized.tensor(named: "\(layer).codes"), "\(quantized.tensors.map(\.name))")
                #expect(codes.bytes?.count == Self.weightsPerLayer, "8 bits per weight")
                #expect(quantized.tensor(named: "\(layer).scale") != nil)
                #expect(quantized.tensor(named: "\(layer).zero_point") != nil)
                #expect(quantized.tensor(named: layer) == nil, "the float weights are not stored beside the codes")
            }
            #expect(quantized.tensor(named: "layers.0.bias")?.values.count == 8)

            // The default model is the last stage, byte for byte.
            let served = try await api.get("/v1/jobs/\(id)/model")
            #expect(served.status == .ok)
            #expect(served.data == bodies["quantized"])
            #expect(served.headers[.contentDisposition]?.contains("compressed.safetensors") == true)
        }
    }

    @Test("A quantized job predicts class probabilities")
    func quantizedJobPredicts() async throws {
        try await withServer(Self.workers) { api in
            let (id, _) = try await Self.compressedJob(api)
            let prediction = try await api.post("/v1/jobs/\(id)/predict", body: #"{"inputs": [[0, 0], [1.5, -0.5], [-1, 1], [2, 0.5]]}"#)
            #expect(prediction.status == .ok, "\(prediction.text)")
            let outputs = try #require(try prediction.json()["outputs"]?.array)
            #expect(outputs.count == 4)
            for row in outputs {
                let probabilities = row.array?.compactMap(\.number) ?? []
                #expect(probabilities.count == 2)
                #expect(probabilities.allSatisfy { $0 >= 0 && $0 <= 1 })
                #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
            }
            let predictions = try prediction.json()["predictions"]?.array?.compactMap(\.string) ?? []
            #expect(predictions.count == 4 && predictions.allSatisfy { ["0", "1"].contains($0) }, "\(prediction.text)")
        }
    }

    @Test("An unknown stage is a 422 naming stage and listing the job's stages")
    func unknownStage() async throws {
        try await withServer(Self.workers) { api in
            let (id, _) = try await Self.compressedJob(api)
            let error = try expectError(try await api.get("/v1/jobs/\(id)/model?stage=nope"), .unprocessableContent, code: "invalid",
                                        naming: ["nope"] + Self.pipelineStages)
            #expect(error.paths == ["stage"], "\(error.allText)")
        }
    }

    @Test("Fine-tuning epochs continue the job's metrics after the training epochs, and the job ends at progress 1")
    func fineTuningEpochsAreCounted() async throws {
        try await withServer(Self.workers) { api in
            let (id, job) = try await Self.compressedJob(api)
            let rows = try #require(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array)
            #expect(rows.compactMap { $0["epoch"]?.int } == [1, 2, 3], "2 training epochs, then 1 fine-tuning epoch")
            #expect(rows.allSatisfy { $0["train_loss"]?.number?.isFinite == true })
            // The fine-tuning epoch trains with half the weights held at zero.
            #expect((rows.last?["sparsity"]?.number ?? 0) > 0.3, "\(rows.last ?? .null)")
            #expect(rows.first?["sparsity"]?.number == 0)
            #expect(job["epoch"]?.int == 3)
            #expect(job["progress"]?.number == 1)
            #expect(job["epochs"]?.int == 3, "epochs = 2 training + 1 fine-tuning: \(job["epochs"] ?? .null)")
            // The finished job's event stream tells the same count.
            let events = try ServerSentEvent.parse(try await api.get("/v1/jobs/\(id)/events").text)
            #expect(events.first?.data["epoch"]?.int == 3)
            #expect(events.first?.data["epochs"]?.int == 3, "\(events.first?.data ?? .null)")
        }
    }

    // MARK: Jobs without a pipeline

    @Test("A job without compression reports one trained stage, serves it as stage trained and refuses stage pruned")
    func uncompressedJob() async throws {
        try await withServer(Self.workers) { api in
            let id = try await api.submit(try Self.spec(name: "plain"))
            let job = try await api.waitUntilFinished(id)
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            let report = try await Self.report(api, id)
            let stages = try #require(report["stages"]?.array, "\(report)")
            #expect(stages.compactMap { $0["name"]?.string } == ["trained"])
            #expect(report["sensitivity"] == .null)
            let stage = try #require(stages.first)
            #expect(stage["parameters"]?.int == Self.parameters)
            #expect(stage["bytes"] == job["result"]?["model_bytes"])
            #expect(stage["test_accuracy"] == job["result"]?["test_accuracy"])
            #expect(stage["test_accuracy"]?.number != nil)
            #expect(job["result"]?["test_macro_f1"]?.number != nil, "a job without compression keeps its macro F1")

            let model = try await api.get("/v1/jobs/\(id)/model")
            let trained = try await api.get("/v1/jobs/\(id)/model?stage=trained")
            #expect(trained.status == .ok, "\(trained.text)")
            #expect(trained.data == model.data)
            #expect(trained.body.readableBytes == stage["bytes"]?.int)

            let pruned = try expectError(try await api.get("/v1/jobs/\(id)/model?stage=pruned"), .unprocessableContent, naming: ["trained"])
            #expect(pruned.paths == ["stage"])

            // A job without compression has its model and its one-stage report, no stage files.
            #expect(try Self.modelFiles(api, of: id) == ["\(id).report.json", "\(id).safetensors"])

            #expect(stage["nonzero"]?.int != nil, "\(stage)")
            #expect(stage["latency_ms_per_sample"]?.number != nil, "\(stage)")
        }
    }

    @Test("The report of a queued, failed or unknown job is refused: 409, 409, 404")
    func reportOfUnfinishedJobs() async throws {
        try await withServer { api in
            // No workers: the job stays queued.
            let queued = try await api.submit(try Self.spec(compression: Self.pipeline))
            #expect(try await api.job(queued)["epochs"]?.int == 3, "2 training epochs + 1 fine-tuning epoch")
            try expectError(try await api.get("/v1/jobs/\(queued)/report"), .conflict, naming: ["queued"])
            try expectError(try await api.get("/v1/jobs/\(queued)/model?stage=trained"), .conflict, naming: ["queued"])
            try expectError(try await api.get("/v1/jobs/job_missing/report"), .notFound)
        }
        try await withServer(Self.workers) { api in
            let diverging = try Self.spec(compression: Self.pipeline, extra: #", "preprocessing": {"standardize": false}, "optimizer": {"type": "sgd", "lr": 1e30}"#)
            let failed = try await api.submit(diverging)
            let job = try await api.waitUntilFinished(failed)
            #expect(job["status"] == "failed", "\(job.encodedString())")
            try expectError(try await api.get("/v1/jobs/\(failed)/report"), .conflict, naming: ["failed"])
            #expect(try Self.modelFiles(api, of: failed) == [], "a failed job leaves no stage or report behind")
        }
    }

    @Test("Deleting a compressed job removes its model, every stage file and its report from models/")
    func deleteRemovesEveryFile() async throws {
        try await withServer(Self.workers) { api in
            let (id, _) = try await Self.compressedJob(api)
            // Another job's files stay.
            let other = try await api.submit(try Self.spec(name: "other"))
            #expect(try await api.waitUntilFinished(other)["status"] == "succeeded")

            // Every stage but the last (which is the model file itself) has its own file.
            let expected = (["\(id).safetensors", "\(id).report.json"] + Self.pipelineStages.dropLast().map { "\(id).\($0).safetensors" }).sorted()
            #expect(try Self.modelFiles(api, of: id) == expected)
            #expect(try await api.delete("/v1/jobs/\(id)").status == .noContent)
            #expect(try Self.modelFiles(api, of: id) == [])
            try expectError(try await api.get("/v1/jobs/\(id)/report"), .notFound)
            #expect(try Self.modelFiles(api, of: other) == ["\(other).report.json", "\(other).safetensors"])
            #expect(try await api.get("/v1/jobs/\(other)/model").status == .ok)
        }
    }

    // MARK: Distillation

    @Test("An unknown or unfinished teacher is a 422 at distillation.teacher_job, and nothing is queued")
    func unknownTeacher() async throws {
        try await withServer { api in
            let unknown = try await api.post("/v1/jobs", json: try Self.spec(extra: #", "distillation": {"teacher_job": "job_missing"}"#))
            let error = try expectError(unknown, .unprocessableContent, code: "invalid", naming: ["job_missing"])
            #expect(error.paths == ["distillation.teacher_job"], "\(error.allText)")
            let validated = try await api.post("/v1/jobs/validate", json: try Self.spec(extra: #", "distillation": {"teacher_job": "job_missing"}"#))
            try expectError(validated, .unprocessableContent, naming: ["distillation.teacher_job"])
            try await api.expectNoJob()

            let queued = try await api.submit(try Self.spec(name: "teacher"))
            let unfinished = try await api.post("/v1/jobs", json: try Self.spec(extra: #", "distillation": {"teacher_job": "\#(queued)"}"#))
            let refusal = try expectError(unfinished, .unprocessableContent, naming: ["queued"])
            #expect(refusal.paths == ["distillation.teacher_job"])
            #expect(try await api.get("/v1/jobs").json()["jobs"]?.array?.count == 1)
        }
    }

    @Test("A teacher with another number of outputs is a 422 naming both widths")
    func teacherOfAnotherWidth() async throws {
        try await withServer(Self.workers) { api in
            // (JSONValue.parse: JSONValue("literal") without interpolation would be a JSON string.)
            let blobs = try JSONValue.parse(Data("""
                {"dataset": {"builtin": "blobs", "samples": 300, "classes": 3, "seed": 2},
                 "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]},
                 "training": {"epochs": 1}}
                """.utf8))
            let teacher = try await api.submit(blobs)
            #expect(try await api.waitUntilFinished(teacher)["status"] == "succeeded")
            let student = try await api.post("/v1/jobs", json: try Self.spec(extra: #", "distillation": {"teacher_job": "\#(teacher)"}"#))
            let error = try expectError(student, .unprocessableContent, code: "invalid", naming: [teacher, "3 outputs", "2"])
            #expect(error.paths == ["distillation.teacher_job"], "\(error.allText)")
            #expect(try await api.get("/v1/jobs").json()["jobs"]?.array?.count == 1, "only the teacher")
        }
    }

    @Test("A student of a finished teacher succeeds, and its report's first stage is named distilled")
    func distilledStudent() async throws {
        try await withServer(Self.workers) { api in
            let teacher = try await api.submit(try Self.spec(name: "teacher", epochs: 3))
            #expect(try await api.waitUntilFinished(teacher)["status"] == "succeeded")

            let studentSpec = try JSONValue("""
                {"name": "student", "dataset": {"builtin": "moons", "samples": 400, "seed": 1}, "test": {"split": 0.2},
                 "model": {"layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 2}]},
                 "training": {"epochs": 2}, "distillation": {"teacher_job": "\(teacher)", "temperature": 2, "alpha": 0.5},
                 "compression": [{"type": "quantize"}]}
                """)
            let student = try await api.submit(studentSpec)
            let job = try await api.waitUntilFinished(student)
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            #expect(job["spec"]?["distillation"] == ["teacher_job": .string(teacher), "temperature": 2, "alpha": 0.5])
            let stages = try #require(try await Self.report(api, student)["stages"]?.array)
            #expect(stages.compactMap { $0["name"]?.string } == ["distilled", "quantized"])
            let distilled = try await api.get("/v1/jobs/\(student)/model?stage=distilled")
            #expect(distilled.status == .ok, "\(distilled.text)")
            #expect(distilled.body.readableBytes == stages.first?["bytes"]?.int)
            let file = try SafeTensorsFile.parse(distilled.data)
            #expect(file.tensor(named: "layers.0.weight")?.shape == [4, 2], "the student's own, smaller model")
            let prediction = try await api.post("/v1/jobs/\(student)/predict", body: #"{"inputs": [[0, 0]]}"#)
            #expect(prediction.status == .ok, "\(prediction.text)")
        }
    }

    @Test("A student without a compression pipeline also reports its one stage as distilled")
    func distilledStudentWithoutPipeline() async throws {
        try await withServer(Self.workers) { api in
            let teacher = try await api.submit(try Self.spec(name: "teacher"))
            #expect(try await api.waitUntilFinished(teacher)["status"] == "succeeded")
            let student = try await api.submit(try Self.spec(name: "student", extra: #", "distillation": {"teacher_job": "\#(teacher)"}"#))
            let job = try await api.waitUntilFinished(student)
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            let stages = try #require(try await Self.report(api, student)["stages"]?.array)
            #expect(stages.count == 1)
            #expect(stages.first?["name"] == "distilled", "\(stages)")
            let distilled = try await api.get("/v1/jobs/\(student)/model?stage=distilled")
            #expect(distilled.status == .ok, "\(distilled.text)")
        }
    }
}
