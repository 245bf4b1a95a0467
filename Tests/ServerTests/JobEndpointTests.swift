import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import NeuralNetwork
import Testing

/// The job endpoints with the workers off, so every job stays where the test puts it.
@Suite("Job endpoints")
struct JobEndpointTests {
    @Test("Submitting a job answers 201 queued with links, after the row is in the store")
    func submit() async throws {
        try await withServer(ServerOptions(fileDatabase: true)) { api in
            let response = try await api.post("/v1/jobs", json: try Specs.moons())
            #expect(response.status == .created, "\(response.text)")
            let body = try response.json()
            #expect(body.object?.keys.sorted() == ["id", "links", "status"])
            let id = try #require(body["id"]?.string)
            #expect(id.hasPrefix("job_"))
            #expect(body["status"] == "queued")
            #expect(response.headers[.location] == "/v1/jobs/\(id)")
            #expect(body["links"]?["self"] == .string("/v1/jobs/\(id)"))
            for link in ["metrics", "events", "cancel", "model", "predict"] {
                #expect(body["links"]?[link] == .string("/v1/jobs/\(id)/\(link)"), "links.\(link)")
            }

            // Another connection to the database file sees the job: it was committed before the answer.
            let database = try AppDatabase.open(path: api.folder.appendingPathComponent("descent.sqlite").path)
            let stored = try #require(try database.job(id: id))
            #expect(stored.status == .queued)
            #expect(stored.name == "moons-test")
            #expect(stored.epochs == 3)
            #expect(stored.datasetId == "builtin:moons")
        }
    }

    @Test("An Idempotency-Key makes a retried POST answer 200 with the first job instead of queuing a second")
    func idempotency() async throws {
        try await withServer { api in
            let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "retry-42"]
            let first = try await api.post("/v1/jobs", json: try Specs.moons(), headers: key)
            #expect(first.status == .created)
            let second = try await api.post("/v1/jobs", json: try Specs.moons(), headers: key)
            #expect(second.status == .ok, "\(second.text)")
            #expect(try second.json()["id"] == first.json()["id"])
            #expect(try second.json()["status"] == "queued")

            let other = try await api.post("/v1/jobs", json: try Specs.moons(), headers: [HTTPField.Name("Idempotency-Key")!: "another"])
            #expect(other.status == .created)
            #expect(try other.json()["id"] != first.json()["id"])
            #expect(try await api.get("/v1/jobs").json()["jobs"]?.array?.count == 2)

            let tooLong = try await api.post("/v1/jobs", json: try Specs.moons(),
                                             headers: [HTTPField.Name("Idempotency-Key")!: String(repeating: "k", count: 300)])
            try expectError(tooLong, .badRequest, naming: ["Idempotency-Key"])
            #expect(try await api.get("/v1/jobs").json()["jobs"]?.array?.count == 2)
        }
    }

    @Test("POST /v1/jobs/validate answers 200 with the parameter count and flops per sample, and queues nothing")
    func validate() async throws {
        try await withServer { api in
            let response = try await api.post("/v1/jobs/validate", json: try Specs.moons())
            #expect(response.status == .ok, "\(response.text)")
            let body = try response.json()
            #expect(body["valid"] == true)
            // 2 → 8 → 2: (2·8 + 8) + (8·2 + 2) parameters; 2·(2·8 + 8·2) flops.
            #expect(body["parameters"]?.int == 42)
            #expect(body["flops_per_sample"]?.int == 64)
            try await api.expectNoJob()
        }
    }

    @Test("Jobs are listed newest first, filtered by status, limited and paged with a cursor")
    func list() async throws {
        try await withServer { api in
            var ids: [String] = []
            for _ in 0..<5 { ids.append(try await api.submit(try Specs.moons())) }
            for id in ids.prefix(2) { #expect(try await api.post("/v1/jobs/\(id)/cancel").status == .accepted) }

            let all = try await api.get("/v1/jobs").json()
            #expect(Set(all["jobs"]?.array?.compactMap { $0["id"]?.string } ?? []) == Set(ids))
            #expect(all["next_cursor"] == .null)
            #expect(all["jobs"]?[0]?["spec"] == nil, "the list leaves out the spec")
            let times = all["jobs"]?.array?.compactMap { $0["created_at"]?.string } ?? []
            #expect(times == times.sorted(by: >), "newest first")

            let cancelled = try await api.get("/v1/jobs?status=cancelled").json()["jobs"]?.array ?? []
            #expect(Set(cancelled.compactMap { $0["id"]?.string }) == Set(ids.prefix(2)))
            #expect(cancelled.allSatisfy { $0["status"] == "cancelled" })
            let queued = try await api.get("/v1/jobs?status=queued").json()["jobs"]?.array ?? []
            #expect(Set(queued.compactMap { $0["id"]?.string }) == Set(ids.suffix(3)))
            #expect(try await api.get("/v1/jobs?status=running").json()["jobs"]?.array?.count == 0)

            // Pages of two: 2 + 2 + 1, each id once, in the order of the full list.
            var paged: [String] = []
            var pageSizes: [Int] = []
            var cursor: String?
            repeat {
                let uri = "/v1/jobs?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let response = try await api.get(uri)
                #expect(response.status == .ok, "\(response.text)")
                let page = try response.json()
                let pageIds = page["jobs"]?.array?.compactMap { $0["id"]?.string } ?? []
                paged += pageIds
                pageSizes.append(pageIds.count)
                cursor = page["next_cursor"]?.string
            } while cursor != nil && pageSizes.count < 10
            #expect(pageSizes == [2, 2, 1])
            #expect(paged == all["jobs"]?.array?.compactMap { $0["id"]?.string })

            // The cursor pages a filtered list too.
            let firstQueued = try await api.get("/v1/jobs?status=queued&limit=2").json()
            let next = try #require(firstQueued["next_cursor"]?.string)
            let secondQueued = try await api.get("/v1/jobs?status=queued&limit=2&cursor=\(next)").json()
            #expect(secondQueued["jobs"]?.array?.count == 1)
            #expect(secondQueued["next_cursor"] == .null)
        }
    }

    @Test("Bad list queries answer 422 naming the parameter, a malformed cursor included")
    func badListQueries() async throws {
        try await withServer { api in
            try expectError(try await api.get("/v1/jobs?status=sleeping"), .unprocessableContent, naming: ["status", "sleeping"])
            try expectError(try await api.get("/v1/jobs?limit=0"), .unprocessableContent, naming: ["limit"])
            try expectError(try await api.get("/v1/jobs?limit=ten"), .unprocessableContent, naming: ["limit"])
            try expectError(try await api.get("/v1/jobs?cursor=not-a-cursor"), .unprocessableContent, naming: ["cursor"])
        }
    }

    @Test("GET /v1/jobs/{id} has the fields of API.md and the spec with every default filled in")
    func show() async throws {
        try await withServer { api in
            let id = try await api.submit(try Specs.moons(epochs: 7))
            let job = try await api.job(id)
            let fields = ["id", "name", "status", "progress", "epoch", "epochs", "attempt", "priority", "created_at", "started_at",
                          "finished_at", "latest", "best_epoch", "stopped_early", "error", "spec", "result", "links"]
            for field in fields { #expect(job[field] != nil, "missing \(field)") }
            #expect(job["id"] == .string(id))
            #expect(job["name"] == "moons-test")
            #expect(job["status"] == "queued")
            #expect(job["progress"]?.number == 0)
            #expect(job["epoch"]?.int == 0)
            #expect(job["epochs"]?.int == 7)
            #expect(job["attempt"]?.int == 0)
            #expect(job["priority"]?.int == 0)
            #expect(job["created_at"]?.string?.hasSuffix("Z") == true)
            for field in ["started_at", "finished_at", "latest", "best_epoch", "error", "result"] {
                #expect(job[field] == .null, "\(field) of a queued job")
            }
            #expect(job["stopped_early"] == false)

            let spec = try #require(job["spec"])
            #expect(spec["name"] == "moons-test")
            #expect(spec["task"] == "supervised")
            #expect(spec["dataset"] == ["builtin": "moons", "samples": 400, "noise": 0.1, "classes": 2, "seed": 1])
            #expect(spec["validation"] == ["split": 0.2])
            #expect(spec["test"] == ["split": 0])
            #expect(spec["preprocessing"] == ["standardize": true])
            #expect(spec["model"]?["input_shape"] == [2])
            #expect(spec["model"]?["layers"] == [
                ["type": "dense", "units": 8, "activation": "relu", "bias": true],
                ["type": "dense", "units": 2, "activation": "linear", "bias": true],
            ])
            #expect(spec["loss"] == ["type": "cross_entropy", "label_smoothing": 0, "class_weights": nil])
            #expect(spec["optimizer"] == ["type": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0, "amsgrad": false])
            #expect(spec["training"] == ["epochs": 7, "batch_size": 32, "shuffle": true, "seed": 0, "gradient_clip_norm": nil,
                                         "gradient_clip_value": nil, "sampling": "uniform"])
            #expect(spec["regularization"] == ["l1": 0, "l2": 0, "elastic_net": nil, "max_norm": nil])
            for key in ["schedule", "early_stopping", "distillation", "init", "distributed", "notify"] {
                #expect(spec[key] == .null, "spec.\(key)")
            }
            #expect(spec["augmentation"] == [])
            #expect(spec["compression"] == [])
            #expect(spec["priority"] == 0)
            #expect(spec["max_attempts"] == 3)
        }
    }

    @Test("A job named by dataset name is pinned to that dataset's id")
    func datasetByName() async throws {
        try await withServer { api in
            let iris = try await api.uploadShared("iris.csv", name: "flowers")
            var spec = try Specs.iris(datasetId: "unused")
            if case .object(var fields) = spec { fields["dataset"] = ["name": "flowers"]; spec = .object(fields) }
            let id = try await api.submit(spec)
            #expect(try await api.job(id)["spec"]?["dataset"] == ["id": iris["id"]!])
            #expect(try await api.job(id)["spec"]?["model"]?["input_shape"] == [4])
        }
    }

    @Test("Cancelling a queued job answers 202 and cancels it at once; a second cancel answers 409")
    func cancelQueued() async throws {
        try await withServer { api in
            let id = try await api.submit(try Specs.moons())
            let response = try await api.post("/v1/jobs/\(id)/cancel")
            #expect(response.status == .accepted, "\(response.text)")
            #expect(try response.json()["status"] == "cancelled")
            let job = try await api.job(id)
            #expect(job["status"] == "cancelled")
            #expect(job["finished_at"]?.string != nil)
            try expectError(try await api.post("/v1/jobs/\(id)/cancel"), .conflict, code: "wrong_state", naming: [id, "cancelled"])
        }
    }

    @Test("DELETE of a queued job answers 409; once cancelled it answers 204 and the job is gone")
    func deleteQueued() async throws {
        try await withServer { api in
            let id = try await api.submit(try Specs.moons())
            try expectError(try await api.delete("/v1/jobs/\(id)"), .conflict, code: "wrong_state", naming: [id, "queued"])
            #expect(try await api.job(id)["status"] == "queued")
            #expect(try await api.post("/v1/jobs/\(id)/cancel").status == .accepted)
            #expect(try await api.delete("/v1/jobs/\(id)").status == .noContent)
            try expectError(try await api.get("/v1/jobs/\(id)"), .notFound, code: "not_found", naming: [id])
            try await api.expectNoJob()
        }
    }

    @Test("The model and predictions of an unfinished job answer 409")
    func modelOfUnfinishedJob() async throws {
        try await withServer { api in
            let id = try await api.submit(try Specs.moons())
            try expectError(try await api.get("/v1/jobs/\(id)/model"), .conflict, code: "wrong_state", naming: [id, "queued"])
            let predict = try await api.post("/v1/jobs/\(id)/predict", body: #"{"inputs": [[0.5, 0.5]]}"#)
            try expectError(predict, .conflict, code: "wrong_state", naming: [id])
            #expect(try await api.post("/v1/jobs/\(id)/cancel").status == .accepted)
            try expectError(try await api.get("/v1/jobs/\(id)/model"), .conflict, code: "wrong_state", naming: ["cancelled"])
        }
    }

    @Test("A queued job has no metrics yet, and its event stream starts with its status")
    func metricsAndEventsOfQueuedJob() async throws {
        try await withServer { api in
            let id = try await api.submit(try Specs.moons())
            let metrics = try await api.get("/v1/jobs/\(id)/metrics")
            #expect(metrics.status == .ok)
            #expect(try metrics.json() == ["epochs": []])
            // Cancelled, its stream is the status and done, then it ends.
            #expect(try await api.post("/v1/jobs/\(id)/cancel").status == .accepted)
            let events = try await api.get("/v1/jobs/\(id)/events")
            #expect(events.status == .ok)
            #expect(events.headers[.contentType] == "text/event-stream")
            let parsed = try ServerSentEvent.parse(events.text)
            #expect(parsed.map(\.event) == ["status", "done"])
            #expect(parsed.first?.data["status"] == "cancelled")
            #expect(parsed.last?.data["status"] == "cancelled")
        }
    }

    @Test("Unknown job ids answer 404 with the error envelope on every route")
    func unknownIds() async throws {
        try await withServer { api in
            let id = "job_doesnotexist"
            let responses: [(String, APIResponse)] = [
                ("GET", try await api.get("/v1/jobs/\(id)")),
                ("GET metrics", try await api.get("/v1/jobs/\(id)/metrics")),
                ("GET events", try await api.get("/v1/jobs/\(id)/events")),
                ("GET model", try await api.get("/v1/jobs/\(id)/model")),
                ("POST cancel", try await api.post("/v1/jobs/\(id)/cancel")),
                ("POST predict", try await api.post("/v1/jobs/\(id)/predict", body: #"{"inputs": [[0, 0]]}"#)),
                ("DELETE", try await api.delete("/v1/jobs/\(id)")),
            ]
            for (route, response) in responses {
                let error = try expectError(response, .notFound, code: "not_found", naming: [id])
                #expect(error.details.isEmpty, "\(route)")
            }
        }
    }
}

/// One event of a `text/event-stream` body.
struct ServerSentEvent {
    var event: String
    var data: JSONValue

    /// As EventSource reads it: a block without a `data` line (the `retry` hint) dispatches nothing.
    static func parse(_ text: String) throws -> [ServerSentEvent] {
        try text.components(separatedBy: "\n\n").compactMap { block in
            var event = "message", data: String?
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
                else if line.hasPrefix("data: ") { data = (data ?? "") + line.dropFirst(6) }
            }
            return try data.map { ServerSentEvent(event: event, data: try JSONValue($0)) }
        }
    }
}
