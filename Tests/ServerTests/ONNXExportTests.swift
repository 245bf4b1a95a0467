import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Tensors
import Testing
import Training

/// `GET /v1/jobs/{id}/model?format=onnx` (API.md § Models) on models trained by the real server on digits:
/// the file passes `onnx.checker` (full check) and onnxruntime's outputs equal `/predict`'s within 1e-4
/// (1e-3 for a quantized model).
@Suite("ONNX export through the API")
struct ONNXExportTests {
    static let workers = ServerOptions(runsWorkers: true)
    static let tolerance = 1e-4
    static let quantizedTolerance = 1e-3

    /// The first `count` rows of digits.csv (64 grey levels each), as /predict takes them.
    static func digits(_ count: Int = 40) throws -> [[Double]] {
        try DigitRows(count: count).pixels.map { $0.map(Double.init) }
    }

    /// A digits job: `layers` on `inputShape`, `epochs` epochs, an optional compression pipeline.
    static func spec(_ name: String, inputShape: [Int] = [64], layers: String, epochs: Int = 2, compression: String? = nil) throws -> JSONValue {
        try parsedJSON("""
            {"name": "\(name)", "dataset": {"name": "digits"}, "validation": {"split": 0.2}, "test": {"split": 0.2},
             "model": {"input_shape": \(inputShape), "layers": \(layers)},
             "training": {"epochs": \(epochs), "batch_size": 32, "seed": 3}\(compression.map { #", "compression": \#($0)"# } ?? "")}
            """)
    }

    /// Uploads digits, runs `spec` to success and returns the job id.
    static func trainedJob(_ api: APIClient, _ spec: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        _ = try await api.uploadShared("digits.csv", name: "digits", sourceLocation: sourceLocation)
        let id = try await api.submit(spec, sourceLocation: sourceLocation)
        let job = try await api.waitUntilFinished(id, timeout: .seconds(300), sourceLocation: sourceLocation)
        try #require(job["status"] == "succeeded", "\(job.encodedString())", sourceLocation: sourceLocation)
        return id
    }

    /// Downloads the job's model as ONNX (`query` adds e.g. `&stage=pruned`), expecting 200 and a `.onnx` file name.
    static func download(_ api: APIClient, _ id: String, query: String = "", sourceLocation: SourceLocation = #_sourceLocation) async throws -> Data {
        let response = try await api.get("/v1/jobs/\(id)/model?format=onnx\(query)")
        #expect(response.status == .ok, "\(response.text.prefix(500))", sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "application/octet-stream", sourceLocation: sourceLocation)
        let disposition = response.headers[.contentDisposition] ?? ""
        #expect(disposition.hasPrefix("attachment; filename=\"") && disposition.hasSuffix(".onnx\""), "\(disposition)", sourceLocation: sourceLocation)
        return response.data
    }

    /// `/predict` on `rows`: the outputs and the predicted labels.
    static func predict(_ api: APIClient, _ id: String, _ rows: [[Double]],
                        sourceLocation: SourceLocation = #_sourceLocation) async throws -> (outputs: [[Double]], labels: [String]) {
        let body: JSONValue = ["inputs": .array(rows.map { .array($0.map { JSONValue($0) }) })]
        let response = try await api.post("/v1/jobs/\(id)/predict", json: body)
        try #require(response.status == .ok, "\(response.text.prefix(500))", sourceLocation: sourceLocation)
        let json = try response.json()
        let outputs = try #require(json["outputs"]?.array, sourceLocation: sourceLocation).map { $0.array?.compactMap(\.number) ?? [] }
        return (outputs, json["predictions"]?.array?.compactMap(\.string) ?? [])
    }

    /// Downloads the ONNX model, runs it in onnxruntime on digits rows and expects `probabilities` within
    /// `tolerance` of `/predict`'s outputs, the `logits` to pick the same labels, and the file's class labels.
    /// Returns the run, the file and the largest difference.
    @discardableResult
    static func expectSameAsPredict(_ api: APIClient, _ id: String, tolerance: Double = tolerance, label: String,
                                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> (run: ONNXRuntime.Run, file: Data, difference: Double) {
        let rows = try digits()
        let file = try await download(api, id, sourceLocation: sourceLocation)
        let expected = try await predict(api, id, rows, sourceLocation: sourceLocation)
        let run = try await ONNXRuntime.run(file, inputs: rows)
        #expect(run.outputNames == ["probabilities", "logits"], sourceLocation: sourceLocation)
        #expect(run.inputShape.reduce(1, *) == 64, "\(run.inputShape)", sourceLocation: sourceLocation)
        let probabilities = try #require(run.outputs["probabilities"], sourceLocation: sourceLocation)
        let difference = ONNXRuntime.maxDifference(expected.outputs, probabilities)
        let unoptimized = ONNXRuntime.maxDifference(expected.outputs, run.unoptimizedOutputs["probabilities"] ?? [])
        print("ONNX \(label): \(file.count) bytes, max |onnxruntime − /predict| = \(difference) (\(unoptimized) without graph optimizations)")
        #expect(difference <= tolerance, "\(label): onnxruntime differs from /predict by \(difference)", sourceLocation: sourceLocation)
        #expect(unoptimized <= tolerance, "\(label): without graph optimizations by \(unoptimized)", sourceLocation: sourceLocation)
        let labels = (run.outputs["logits"] ?? []).map { logits in String(logits.indices.max { logits[$0] < logits[$1] } ?? -1) }
        #expect(labels == expected.labels, "\(label): the logits' argmax differs from /predict's labels", sourceLocation: sourceLocation)
        #expect(run.metadata["classes"] == #"["0","1","2","3","4","5","6","7","8","9"]"#, "\(run.metadata)", sourceLocation: sourceLocation)
        return (run, file, difference)
    }

    // MARK: Architectures

    @Test("An MLP on digits exports as ONNX whose probabilities equal /predict's, standardization included")
    func mlp() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-mlp", layers: """
                [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}]
                """))
            let (run, _, _) = try await Self.expectSameAsPredict(api, id, label: "MLP")
            #expect(run.ops.isSuperset(of: ["Sub", "Div", "Gemm", "Relu", "Softmax"]), "\(run.ops.sorted())")
            #expect(run.inputShape == [64])
            // The default and ?format=safetensors are still the saved file.
            let saved = try await api.get("/v1/jobs/\(id)/model")
            let explicit = try await api.get("/v1/jobs/\(id)/model?format=safetensors")
            #expect(saved.status == .ok && explicit.data == saved.data)
            #expect(saved.headers[.contentDisposition]?.hasSuffix("digits-mlp.safetensors\"") == true)
            let onnx = try await api.get("/v1/jobs/\(id)/model?format=onnx")
            #expect(onnx.headers[.contentDisposition] == "attachment; filename=\"digits-mlp.onnx\"")
        }
    }

    @Test("A CNN with batch norm, depthwise-separable and shuffle blocks and pooling exports with the same outputs")
    func cnn() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-cnn", inputShape: [1, 8, 8], layers: """
                [{"type": "conv2d", "filters": 6, "kernel": 3, "padding": "same", "activation": "relu"},
                 {"type": "batch_norm"},
                 {"type": "depthwise_conv2d", "kernel": 3, "padding": 1, "depth_multiplier": 2, "activation": "relu6"},
                 {"type": "separable_conv2d", "filters": 12},
                 {"type": "shuffle_unit", "out_channels": 12, "groups": 3, "stride": 1},
                 {"type": "channel_shuffle", "groups": 3},
                 {"type": "shuffle_unit", "out_channels": 24, "groups": 3, "stride": 2},
                 {"type": "max_pool2d", "kernel": 2},
                 {"type": "avg_pool2d", "kernel": 2, "stride": 1},
                 {"type": "global_avg_pool2d"},
                 {"type": "dense", "units": 10}]
                """, epochs: 1))
            let (run, _, _) = try await Self.expectSameAsPredict(api, id, label: "CNN")
            #expect(run.ops.isSuperset(of: ["Conv", "BatchNormalization", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool",
                                            "Concat", "Transpose", "Reshape"]), "\(run.ops.sorted())")
            #expect(run.inputShape == [1, 8, 8])
        }
    }

    @Test("An LSTM reading digits as 8 rows of 8 pixels exports with the same outputs")
    func lstm() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-lstm", inputShape: [8, 8], layers: """
                [{"type": "lstm", "hidden_size": 16}, {"type": "dense", "units": 10}]
                """))
            let (run, _, _) = try await Self.expectSameAsPredict(api, id, label: "LSTM")
            #expect(run.ops.contains("LSTM"), "\(run.ops.sorted())")
        }
    }

    @Test("A GRU returning every state exports with the same outputs")
    func gru() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-gru", inputShape: [8, 8], layers: """
                [{"type": "gru", "hidden_size": 12, "return_sequences": true}, {"type": "flatten"}, {"type": "dense", "units": 10}]
                """))
            let (run, _, _) = try await Self.expectSameAsPredict(api, id, label: "GRU")
            #expect(run.ops.contains("GRU"), "\(run.ops.sorted())")
        }
    }

    // MARK: Compression stages

    static let mlpLayers = #"[{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 10}]"#

    @Test("An 80 %-pruned MLP exports as it is: its zeros stay zeros, every stage matches its own predictions")
    func prunedMLP() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-pruned", layers: Self.mlpLayers, compression: """
                [{"type": "prune", "amount": 0.8, "fine_tune_epochs": 1}]
                """))
            let (run, _, _) = try await Self.expectSameAsPredict(api, id, label: "80 %-pruned MLP (fine-tuned)")
            for weight in ["layers.0.weight", "layers.1.weight"] {
                let tensor = try #require(run.initializers[weight], "\(run.initializers.keys.sorted())")
                let sparsity = Double(tensor.zeros) / Double(tensor.count)
                #expect(sparsity >= 0.8 - 1e-9, "\(weight): \(tensor.zeros) of \(tensor.count) are zero")
            }
            // ?stage= picks the stage; its ONNX computes what that stage's own file predicts.
            let rows = try Self.digits(20)
            let saved = try await api.get("/v1/jobs/\(id)/model?stage=pruned")
            #expect(saved.status == .ok)
            let expected = try TrainedModel.load(saved.data).predict(rows).outputs
            let file = try await Self.download(api, id, query: "&stage=pruned")
            let staged = try await api.get("/v1/jobs/\(id)/model?stage=pruned&format=onnx")
            #expect(staged.headers[.contentDisposition] == "attachment; filename=\"digits-pruned.pruned.onnx\"")
            let stageRun = try await ONNXRuntime.run(file, inputs: rows)
            let difference = ONNXRuntime.maxDifference(expected, try #require(stageRun.outputs["probabilities"]))
            print("ONNX 80 %-pruned MLP (?stage=pruned): max |onnxruntime − predict| = \(difference)")
            #expect(difference <= Self.tolerance)
        }
    }

    @Test("An int8-quantized model exports in QDQ form: a byte per weight, the same outputs within 1e-3")
    func int8Model() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-int8", layers: Self.mlpLayers, compression: """
                [{"type": "quantize", "bits": 8}]
                """))
            let (run, file, _) = try await Self.expectSameAsPredict(api, id, tolerance: Self.quantizedTolerance, label: "int8 MLP")
            #expect(run.ops.isSuperset(of: ["QuantizeLinear", "DequantizeLinear", "Gemm"]), "\(run.ops.sorted())")
            for weight in ["layers.0.weight", "layers.1.weight"] {
                #expect(run.initializers["\(weight).codes"]?.type == "INT8", "\(run.initializers)")
                #expect(run.initializers[weight] == nil, "\(weight) is also stored in float")
            }
            // A byte per weight instead of four: of the 3 bytes per weight an int8 code saves, at least 2.5 show in
            // the file (the rest of it — biases, standardization, names, metadata — is the same in both).
            let float = try await Self.download(api, id, query: "&stage=trained")
            let weights = 64 * 64 + 64 * 10
            print("ONNX int8 MLP: \(file.count) bytes; the trained stage in float: \(float.count) bytes")
            #expect(float.count - file.count >= 5 * weights / 2, "\(file.count) bytes quantized, \(float.count) in float")
        }
    }

    // MARK: Refusals

    @Test("A format other than safetensors or onnx is a 422 naming format; an unfinished job's ONNX is a 409")
    func badFormat() async throws {
        try await withServer { api in
            let id = try await api.submit(try Specs.moons())  // no workers: it stays queued
            for format in ["pickle", "ONNX", ""] {
                let error = try expectError(try await api.get("/v1/jobs/\(id)/model?format=\(format)"), .unprocessableContent, code: "invalid",
                                            naming: ["safetensors", "onnx"])
                #expect(error.paths == ["format"], "\(format): \(error.allText)")
            }
            try expectError(try await api.get("/v1/jobs/\(id)/model?format=onnx"), .conflict, code: "wrong_state", naming: ["queued"])
            try expectError(try await api.get("/v1/jobs/job_unknown/model?format=onnx"), .notFound)
        }
    }

    @Test("A model holding something ONNX cannot express answers 409 naming the layer, and no file")
    func inexpressibleModel() async throws {
        try await withServer(Self.workers) { api in
            let id = try await Self.trainedJob(api, try Self.spec("digits-wide-grid", layers: Self.mlpLayers, epochs: 1, compression: """
                [{"type": "quantize", "bits": 8}]
                """))
            // The served file, its second layer's input grid widened to 16 bits (which /predict still runs):
            // QuantizeLinear holds at most 8.
            let url = api.folder.appendingPathComponent("models/\(id).safetensors")
            var file = try SafeTensorsFile.parse(try Data(contentsOf: url))
            var quantization = try JSONValue.parse(Data(try #require(file.metadata["quantization"]).utf8))
            guard case .object(var fields) = quantization, case .object(var activations)? = fields["activations"],
                  case .object(var grid)? = activations["1"]
            else { Issue.record("no activation grid for layer 1: \(quantization)"); return }
            grid["quant_max"] = 65535
            activations["1"] = .object(grid)
            fields["activations"] = .object(activations)
            quantization = .object(fields)
            file.metadata["quantization"] = quantization.encodedString()
            try file.serialized().write(to: url)

            let response = try await api.get("/v1/jobs/\(id)/model?format=onnx")
            let error = try expectError(response, .conflict, code: "not_exportable", naming: ["model.layers[1]", "dense", "QuantizeLinear"])
            #expect(error.paths == ["model.layers[1]"], "\(error.allText)")
            #expect(response.headers[.contentDisposition] == nil)
            #expect(try await api.get("/v1/jobs/\(id)/model").status == .ok, "the safetensors file still downloads")
        }
    }

    // MARK: GAN

    @Test("A GAN job exports its generator: onnxruntime on /samples' latent draws gives /samples' values")
    func ganGenerator() async throws {
        try await withServer(Self.workers) { api in
            let id = try await api.submit(try parsedJSON("""
                {"name": "ring", "task": "gan", "dataset": {"builtin": "gaussian_mixture", "samples": 400, "seed": 2},
                 "preprocessing": {"standardize": true},
                 "model": {"generator": {"latent_dim": 4, "layers": [{"type": "dense", "units": 16, "activation": "leaky_relu"},
                                                                     {"type": "batch_norm"}, {"type": "dense", "units": 2}]},
                           "discriminator": {"layers": [{"type": "dense", "units": 16, "activation": "leaky_relu"}, {"type": "dense", "units": 1}]}},
                 "training": {"epochs": 2, "batch_size": 50, "seed": 1}}
                """))
            let job = try await api.waitUntilFinished(id, timeout: .seconds(300))
            try #require(job["status"] == "succeeded", "\(job.encodedString())")
            let samples = try await api.get("/v1/jobs/\(id)/samples?n=16&seed=7").json()
            let expected = try #require(samples["samples"]?.array).map { $0.array?.compactMap(\.number) ?? [] }
            // /samples draws z ~ N(0, I) from the seed, purpose "samples" (GANModel.sample).
            var random = SeededGenerator(seed: 7, purpose: "samples")
            let latent = (0..<16).map { _ in (0..<4).map { _ in Double(random.normal()) } }
            let file = try await Self.download(api, id)
            let run = try await ONNXRuntime.run(file, inputs: latent)
            #expect(run.outputNames == ["outputs"])
            #expect(run.inputShape == [4])
            let difference = ONNXRuntime.maxDifference(expected, try #require(run.outputs["outputs"]))
            print("ONNX GAN generator: max |onnxruntime − /samples| = \(difference)")
            #expect(difference <= Self.tolerance)
        }
    }
}
