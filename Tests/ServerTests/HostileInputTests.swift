import Foundation
import Testing

/// Inputs that once took the whole server down (issue 18's table) and the classes of input they stand
/// for, sent to a live `descent serve`: each must be answered with a 4xx naming what is wrong (or, for
/// a job whose data only fails when training starts, end as that job's failure), and the server must
/// answer `/healthz` after every one of them.
@Suite("Hostile inputs against a live server", .serialized)
struct HostileInputTests {
    /// One request and the answer it must get.
    struct Case: CustomStringConvertible {
        let name: String
        var method = "POST"
        let path: String
        let body: Data
        var contentType = "application/json"
        let status: Int
        /// Text the answer must contain (the field it names, or the reason).
        let mentions: String
        var description: String { name }
    }

    static func spec(_ fields: String, dataset: String = #"{"builtin": "moons", "samples": 200, "seed": 1}"#) -> Data {
        Data(#"{"dataset": \#(dataset), \#(fields)}"#.utf8)
    }

    /// An NPY file whose header nests `depth` parentheses in its shape.
    static func nestedNPY(depth: Int) -> Data {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + String(repeating: "(", count: depth)
            + String(repeating: ")", count: depth) + ", }"
        var padded = Array(header.utf8)
        while (10 + padded.count + 1) % 64 != 0 { padded.append(UInt8(ascii: " ")) }
        padded.append(UInt8(ascii: "\n"))
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        data.append(contentsOf: [UInt8(padded.count & 0xff), UInt8(padded.count >> 8)])
        data.append(contentsOf: padded)
        return data
    }

    static let cases: [Case] = [
        // 1. A body in UTF-16: Foundation would decode it, the duplicate-key scan read its bytes and crashed.
        Case(name: "a UTF-16 JSON body", path: "/v1/jobs/validate",
             body: #"{"dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "dense", "units": 2}]}}"#.data(using: .utf16)!,
             status: 400, mentions: "UTF-8"),
        Case(name: "a UTF-32 JSON body", path: "/v1/jobs",
             body: #"{"dataset": {"builtin": "moons"}}"#.data(using: .utf32)!, status: 400, mentions: "UTF-8"),
        Case(name: "unbalanced closing brackets after valid JSON", path: "/v1/jobs/validate", body: Data("{}]]]}}".utf8),
             status: 400, mentions: "malformed"),
        // 2. Shape arithmetic that overflowed.
        Case(name: "conv2d padding of 10⁹", path: "/v1/jobs/validate",
             body: spec(#""model": {"input_shape": [1, 1, 2], "layers": [{"type": "conv2d", "filters": 1000000, "kernel": 3, "padding": [1000000000, 1000000000]}, {"type": "flatten"}, {"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "padding"),
        Case(name: "conv2d kernel and filters whose weights overflow", path: "/v1/jobs/validate",
             body: spec(#""model": {"input_shape": [1000000, 1000, 2], "layers": [{"type": "conv2d", "filters": 1000000, "kernel": [1000, 2]}, {"type": "flatten"}, {"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "model"),
        Case(name: "an LSTM with a huge hidden size over a huge input", path: "/v1/jobs/validate",
             body: spec(#""model": {"input_shape": [1000000, 2000], "layers": [{"type": "lstm", "hidden_size": 1000000, "return_sequences": true}, {"type": "flatten"}, {"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "model"),
        Case(name: "an input shape beyond 2³¹ values", path: "/v1/jobs/validate",
             body: spec(#""model": {"input_shape": [100000, 100000, 100000, 100000], "layers": [{"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "input_shape"),
        // 3. Slots that overflowed when summed.
        Case(name: "MPI hosts of Int.max slots each", path: "/v1/jobs/validate",
             body: spec(#""distributed": {"processes": 2, "hosts": ["a:9223372036854775807", "b:9223372036854775807"]}, "model": {"layers": [{"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "distributed.hosts[0]"),
        // MPI placement is the operator's: a tenant names no host of its choosing, and ranks are limited.
        Case(name: "MPI ranks on a host the operator did not list", path: "/v1/jobs/validate",
             body: spec(#""distributed": {"processes": 2, "hosts": ["127.0.0.1:1", "db.internal:1"]}, "model": {"layers": [{"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "--mpi-hosts"),
        Case(name: "more MPI ranks than --max-mpi-processes", path: "/v1/jobs/validate",
             body: spec(#""distributed": {"processes": 200}, "training": {"batch_size": 256}, "model": {"layers": [{"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "--max-mpi-processes"),
        // 4. Channel pruning of a huge model: validation built the network (8.6e15 bytes) before the parameter limit.
        Case(name: "channel pruning of a model of 10¹² parameters", path: "/v1/jobs/validate",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 1000000}, {"type": "dense", "units": 1000000}, {"type": "dense", "units": 2}]}, "compression": [{"type": "prune", "structure": "channel", "amount": 0.5}]"#),
             status: 422, mentions: "max-model-parameters"),
        // 5. (Embeddings: see `embeddingInputsAreCheckedBeforeTheKernel`.) An embedding anywhere but first.
        Case(name: "an embedding after a dense layer", path: "/v1/jobs/validate",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 4}, {"type": "embedding", "num_embeddings": 10, "dim": 2}, {"type": "flatten"}, {"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "model.layers[1]"),
        Case(name: "an embedding over standardized inputs", path: "/v1/jobs/validate",
             body: spec(#""model": {"layers": [{"type": "embedding", "num_embeddings": 10, "dim": 2}, {"type": "flatten"}, {"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "preprocessing.standardize"),
        // 6. A warm-up of 10¹⁵ epochs per step.
        Case(name: "a warm-up of 10¹⁵ epochs", path: "/v1/jobs",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 2}]}, "schedule": {"type": "step", "step_size": 2, "per": "step", "warmup": {"epochs": 1000000000000000}}"#),
             status: 422, mentions: "schedule.warmup.epochs"),
        // 7. cosine_warm_restarts with a huge t_mult.
        Case(name: "cosine_warm_restarts with t_mult 10¹⁴", path: "/v1/jobs",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 2}]}, "schedule": {"type": "cosine_warm_restarts", "t_0": 1, "t_mult": 100000000000000, "per": "step"}"#),
             status: 422, mentions: "schedule.t_mult"),
        Case(name: "milestones beyond any run", path: "/v1/jobs",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 2}]}, "schedule": {"type": "multistep", "milestones": [1, 900000000000000]}"#),
             status: 422, mentions: "schedule.milestones[1]"),
        Case(name: "an L-BFGS of 10¹² iterations", path: "/v1/jobs/validate",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 2}]}, "optimizer": {"type": "lbfgs", "max_iter": 1000000000000}"#),
             status: 422, mentions: "optimizer.max_iter"),
        Case(name: "a learning rate beyond float32", path: "/v1/jobs/validate",
             body: spec(#""model": {"layers": [{"type": "dense", "units": 2}]}, "optimizer": {"type": "adam", "lr": 1e300}"#),
             status: 422, mentions: "optimizer.lr"),
        Case(name: "a kernel of 10⁹ as a pair", path: "/v1/jobs/validate",
             body: spec(#""model": {"input_shape": [1, 1, 2], "layers": [{"type": "max_pool2d", "kernel": [1000000000, 1]}, {"type": "flatten"}, {"type": "dense", "units": 2}]}"#),
             status: 422, mentions: "kernel"),
        // 8. An NPY header of 32 000 nested parentheses (the reader recursed once per level).
        Case(name: "an NPY header of 32 000 nested parentheses", path: "/v1/datasets?name=deep&format=npy",
             body: nestedNPY(depth: 32_000), contentType: "application/octet-stream", status: 422, mentions: "header"),
        // Nesting in JSON bodies, and a prediction beyond float32 (after a model exists, see below).
        Case(name: "JSON nested 10 000 levels deep", path: "/v1/jobs/validate",
             body: Data((String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)).utf8), status: 422, mentions: "nest"),
    ]

    @Test("Each hostile request is a 4xx naming the problem, and the server answers after every one")
    func everyHostileRequestIsRefusedAndTheServerSurvives() async throws {
        try await ServerProcess.withFresh("hostile") { server in
            for hostile in Self.cases {
                let (status, data) = try await server.request(hostile.method, hostile.path, body: hostile.body, contentType: hostile.contentType)
                let text = String(decoding: data, as: UTF8.self)
                #expect(status == hostile.status, "\(hostile.name): \(status) \(text.prefix(600))")
                #expect(text.contains(hostile.mentions), "\(hostile.name): the answer should mention \(hostile.mentions): \(text.prefix(600))")
                #expect(text.contains(#""error""#), "\(hostile.name): not the error envelope: \(text.prefix(300))")
                let health = try await server.request("GET", "/healthz", timeout: 5)
                #expect(health.status == 200, "the server stopped answering after \(hostile.name); log: \(server.log().suffix(2000))")
            }
        }
    }

    @Test("Schedules at the edge of their ranges train: a warm-up of 10⁹ steps and periods that grow a thousandfold saturate instead of overflowing")
    func schedulesAtTheirBoundsTrain() async throws {
        try await ServerProcess.withFresh("hostile-schedules") { server in
            let schedules = [
                #"{"type": "step", "step_size": 2, "per": "step", "warmup": {"epochs": 1000000000}}"#,
                #"{"type": "cosine_warm_restarts", "t_0": 1, "t_mult": 1000, "per": "step"}"#,
                #"{"type": "cosine", "per": "step", "warmup": {"epochs": 1099511627776}}"#,
            ]
            for schedule in schedules {
                let body = Self.spec(#""model": {"layers": [{"type": "dense", "units": 2}]}, "training": {"epochs": 3, "batch_size": 4}, "schedule": \#(schedule)"#)
                let created = try await server.json("POST", "/v1/jobs", body: body)
                let id = try #require(created["id"] as? String)
                let job = try await server.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
                #expect(job["status"] as? String == "succeeded", "\(schedule): \(job)")
            }
            #expect(try await server.request("GET", "/healthz").status == 200)
        }
    }

    @Test("Embedding inputs are checked before the kernel: fractional or out-of-range training data fails the job, and /predict answers 422")
    func embeddingInputsAreCheckedBeforeTheKernel() async throws {
        try await ServerProcess.withFresh("hostile-embedding") { server in
            // Token sequences of 4 indices in 0..<6; the label is whether the first token is even.
            var csv = "t0,t1,t2,t3,label\n"
            for row in 0..<60 { csv += "\(row % 6),\((row / 6) % 6),\(row % 5),\(row % 4),\(row % 2 == 0 ? "even" : "odd")\n" }
            let dataset = try await server.json("POST", "/v1/datasets?name=tokens&format=csv&target=label", body: Data(csv.utf8), contentType: "text/csv")
            let datasetId = try #require(dataset["id"] as? String)
            func submit(embeddings: Int) async throws -> [String: Any] {
                let body = Data(#"""
                    {"dataset": {"id": "\#(datasetId)"}, "preprocessing": {"standardize": false}, "training": {"epochs": 2},
                     "model": {"layers": [{"type": "embedding", "num_embeddings": \#(embeddings), "dim": 3}, {"type": "flatten"}, {"type": "dense", "units": 2}]}}
                    """#.utf8)
                let id = try #require(try await server.json("POST", "/v1/jobs", body: body)["id"] as? String)
                return try await server.waitForJob(id) { ["succeeded", "failed"].contains($0["status"] as? String ?? "") }
            }
            // A vocabulary of 4 is too small for tokens up to 5: the job fails with the reason, the server lives on.
            let tooSmall = try await submit(embeddings: 4)
            #expect(tooSmall["status"] as? String == "failed")
            let error = String(describing: tooSmall["error"] ?? "")
            #expect(error.contains("0..<4") && error.contains("model.layers[0]"), "\(error)")
            #expect(try await server.request("GET", "/healthz").status == 200)

            let trained = try await submit(embeddings: 6)
            #expect(trained["status"] as? String == "succeeded", "\(trained)")
            let id = try #require(trained["id"] as? String)
            for (inputs, mentions) in [("[[1, 2, 3, 6]]", "inputs[0][3]"), ("[[1, 2.5, 3, 0]]", "inputs[0][1]"),
                                       ("[[1, 2, -1, 0]]", "inputs[0][2]"), ("[[1e300, 0, 0, 0]]", "float32")] {
                let (status, data) = try await server.request("POST", "/v1/jobs/\(id)/predict", body: Data(#"{"inputs": \#(inputs)}"#.utf8))
                let text = String(decoding: data, as: UTF8.self)
                #expect(status == 422, "\(inputs): \(status) \(text)")
                #expect(text.contains(mentions), "\(inputs): \(text)")
                #expect(try await server.request("GET", "/healthz").status == 200, "after predicting \(inputs)")
            }
            let good = try await server.request("POST", "/v1/jobs/\(id)/predict", body: Data(#"{"inputs": [[1, 2, 3, 0]]}"#.utf8))
            #expect(good.status == 200, "\(String(decoding: good.data, as: UTF8.self))")
        }
    }
}
