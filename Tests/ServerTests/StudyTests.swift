import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// A study request on the small moons job of `Specs.moons`.
private func moonsStudy(name: String = "moons", epochs: Int = 3, search: String = #"{"strategy": "grid"}"#,
                        parameters: String, objective: String? = nil) throws -> JSONValue {
    let base = try Specs.moons(epochs: epochs).encodedString()
    return try JSONValue("""
        {"name": "\(name)", "base": \(base), "search": \(search), "parameters": \(parameters)\(objective.map { #", "objective": "# + $0 } ?? "")}
        """)
}

extension APIClient {
    /// Creates a study and returns its id and the ids of its jobs (expects 201).
    func createStudy(_ request: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) async throws -> (id: String, jobs: [String]) {
        let response = try await post("/v1/studies", json: request)
        #expect(response.status == .created, "\(response.text)", sourceLocation: sourceLocation)
        let body = try response.json()
        let id = try #require(body["id"]?.string, "\(response.text)", sourceLocation: sourceLocation)
        return (id, body["job_ids"]?.array?.compactMap(\.string) ?? [])
    }

    func study(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        let response = try await get("/v1/studies/\(id)")
        #expect(response.status == .ok, "\(response.text)", sourceLocation: sourceLocation)
        return try response.json()
    }

    /// Asserts that no study and no job was created.
    func expectNothingQueued(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectNoJob(sourceLocation: sourceLocation)
        let list = try await get("/v1/studies")
        #expect(try list.json()["studies"]?.array?.count == 0, "\(list.text)", sourceLocation: sourceLocation)
    }
}

/// Studies with the workers off: expansion, names, parameters and every refusal.
@Suite("Studies")
struct StudyTests {
    @Test("A 2×2 grid queues 4 jobs with the right specs and names, the first parameter (in path order) varying slowest")
    func gridExpansion() async throws {
        try await withServer { api in
            let request = try moonsStudy(name: "grid", parameters: #"{"optimizer.type": ["sgd", "adam"], "optimizer.lr": [0.1, 0.01]}"#)
            let response = try await api.post("/v1/studies", json: request)
            #expect(response.status == .created, "\(response.text)")
            let body = try response.json()
            #expect(body.object?.keys.sorted() == ["id", "job_ids", "links", "name", "status"])
            let id = try #require(body["id"]?.string)
            #expect(id.hasPrefix("st_"))
            #expect(body["status"] == "running")
            #expect(response.headers[.location] == "/v1/studies/\(id)")
            #expect(body["links"]?["self"] == .string("/v1/studies/\(id)"))
            let jobIds = try #require(body["job_ids"]?.array?.compactMap { $0.string })
            #expect(jobIds.count == 4)

            let expected: [(lr: Double, type: String)] = [(0.1, "sgd"), (0.1, "adam"), (0.01, "sgd"), (0.01, "adam")]
            for (index, (jobId, values)) in zip(jobIds, expected).enumerated() {
                let job = try await api.job(jobId)
                #expect(job["status"] == "queued")
                #expect(job["study_id"] == .string(id))
                let name = "grid #\(index + 1) (optimizer.lr=\(values.lr), optimizer.type=\(values.type))"
                #expect(job["name"] == .string(name))
                #expect(job["spec"]?["name"] == .string(name))
                #expect(job["spec"]?["optimizer"]?["type"] == .string(values.type))
                #expect(job["spec"]?["optimizer"]?["lr"]?.number == values.lr)
                // The rest is the base spec's.
                #expect(job["spec"]?["training"]?["epochs"]?.int == 3)
                #expect(job["spec"]?["dataset"]?["builtin"] == "moons")
                #expect(job["epochs"]?.int == 3)
            }

            let study = try await api.study(id)
            #expect(study["name"] == "grid")
            #expect(study["status"] == "running")
            #expect(study["strategy"] == "grid")
            #expect(study["objective"] == ["metric": "val_loss", "mode": "min"])
            #expect(study["best_job"] == .null)
            let jobs = try #require(study["jobs"]?.array)
            // No job has a value yet: they keep the order they were created in.
            #expect(jobs.compactMap { $0["id"]?.string } == jobIds)
            #expect(jobs.map { $0["parameters"] } == expected.map { ["optimizer.lr": JSONValue($0.lr), "optimizer.type": .string($0.type)] })
            #expect(jobs.allSatisfy { $0["status"] == "queued" && $0["best"] == .null && $0["rank"] == .null })
            // The stored request, defaults filled in.
            #expect(study["spec"]?["search"] == ["strategy": "grid", "max_jobs": 20, "seed": 0])
            #expect(study["spec"]?["parameters"]?["optimizer.lr"] == [0.1, 0.01])
            #expect(study["spec"]?["base"]?["training"]?["epochs"]?.int == 3)

            // Plain jobs belong to no study.
            let plain = try await api.submit(try Specs.moons())
            #expect(try await api.job(plain)["study_id"] == .null)
        }
    }

    @Test("A section the base leaves to its defaults can be searched: regularization.l2 without regularization")
    func missingSectionIsCreated() async throws {
        try await withServer { api in
            let (_, jobIds) = try await api.createStudy(try moonsStudy(parameters: #"{"regularization.l2": [0, 0.001]}"#))
            #expect(jobIds.count == 2)
            for (jobId, l2) in zip(jobIds, [0.0, 0.001]) {
                #expect(try await api.job(jobId)["spec"]?["regularization"]?["l2"]?.number == l2)
            }
        }
    }

    @Test("Whole objects are parameters too, and a child path refines them")
    func wholeObjectParameters() async throws {
        try await withServer { api in
            let (id, jobIds) = try await api.createStudy(try moonsStudy(name: "optimizers", parameters: """
                {"optimizer": [{"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true}, {"type": "adam"}]}
                """))
            #expect(jobIds.count == 2)
            let sgd = try await api.job(jobIds[0]), adam = try await api.job(jobIds[1])
            #expect(sgd["name"] == "optimizers #1 (optimizer=sgd(lr=0.1, momentum=0.9, nesterov=true))")
            #expect(sgd["spec"]?["optimizer"]?["type"] == "sgd")
            #expect(sgd["spec"]?["optimizer"]?["lr"]?.number == 0.1)
            #expect(sgd["spec"]?["optimizer"]?["momentum"]?.number == 0.9)
            #expect(sgd["spec"]?["optimizer"]?["nesterov"] == true)
            #expect(adam["name"] == "optimizers #2 (optimizer=adam)")
            #expect(adam["spec"]?["optimizer"]?["type"] == "adam")
            #expect(adam["spec"]?["optimizer"]?["lr"]?.number == 0.001)  // adam's own default
            let study = try await api.study(id)
            #expect(study["jobs"]?[0]?["parameters"] == ["optimizer": ["type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true]])

            // "optimizer" sorts before "optimizer.lr", so each object gets each rate.
            let (_, refined) = try await api.createStudy(try moonsStudy(name: "refined", parameters: """
                {"optimizer.lr": [0.05, 0.01], "optimizer": [{"type": "sgd", "momentum": 0.9}, {"type": "adam"}]}
                """))
            var seen: [String] = []
            for jobId in refined {
                let optimizer = try #require(try await api.job(jobId)["spec"]?["optimizer"])
                seen.append("\(optimizer["type"]?.string ?? "?") \(optimizer["lr"]?.number ?? 0) \(optimizer["momentum"]?.number.map { "\($0)" } ?? "-")")
            }
            #expect(seen == ["sgd 0.05 0.9", "sgd 0.01 0.9", "adam 0.05 -", "adam 0.01 -"])
        }
    }

    @Test("A random search with a seed draws the same jobs every time, within the distributions' bounds")
    func randomSearchIsSeeded() async throws {
        try await withServer { api in
            let parameters = """
                {"optimizer.type": ["sgd", "adam"], "optimizer.lr": {"log_uniform": [0.0001, 0.1]},
                 "regularization.l2": {"uniform": [0, 0.01]}, "training.batch_size": {"int_uniform": [8, 64]}}
                """
            func draw(seed: Int) async throws -> [JSONValue] {
                let (id, jobIds) = try await api.createStudy(try moonsStudy(
                    name: "random-\(seed)", search: #"{"strategy": "random", "max_jobs": 12, "seed": \#(seed)}"#, parameters: parameters))
                #expect(jobIds.count == 12)
                let study = try await api.study(id)
                #expect(study["strategy"] == "random")
                return study["jobs"]?.array?.compactMap { $0["parameters"] } ?? []
            }
            let first = try await draw(seed: 7), again = try await draw(seed: 7), other = try await draw(seed: 8)
            #expect(first == again)
            #expect(first != other)
            for values in first + other {
                let lr = try #require(values["optimizer.lr"]?.number)
                let l2 = try #require(values["regularization.l2"]?.number)
                let batch = try #require(values["training.batch_size"]?.number)
                #expect(lr >= 0.0001 && lr <= 0.1, "\(lr)")
                #expect(l2 >= 0 && l2 < 0.01, "\(l2)")
                #expect(batch >= 8 && batch <= 64 && batch.rounded() == batch, "\(batch)")
                #expect(["sgd", "adam"].contains(values["optimizer.type"]?.string ?? ""))
            }
            // Log-uniform spreads over the decades: not all draws in the top one.
            #expect(first.contains { ($0["optimizer.lr"]?.number ?? 1) < 0.01 })
            #expect(Set(first.compactMap { $0["optimizer.type"]?.string }) == ["sgd", "adam"])

            // The jobs run what was drawn.
            let (id, jobIds) = try await api.createStudy(try moonsStudy(
                name: "drawn", search: #"{"strategy": "random", "max_jobs": 3, "seed": 1}"#, parameters: parameters))
            let study = try await api.study(id)
            for (jobId, entry) in zip(jobIds, study["jobs"]?.array ?? []) {
                let spec = try #require(try await api.job(jobId)["spec"])
                #expect(spec["training"]?["batch_size"] == entry["parameters"]?["training.batch_size"])
                #expect(spec["regularization"]?["l2"] == entry["parameters"]?["regularization.l2"])
                let lr = try #require(entry["parameters"]?["optimizer.lr"]?.number)
                #expect(abs((spec["optimizer"]?["lr"]?.number ?? 0) - lr) <= lr * 1e-6)  // stored as a Float
            }
        }
    }

    @Test("A random search over a small list-only space queues each combination once")
    func randomSearchSkipsRepeats() async throws {
        try await withServer { api in
            let (id, jobIds) = try await api.createStudy(try moonsStudy(
                search: #"{"strategy": "random", "max_jobs": 20}"#,
                parameters: #"{"optimizer.type": ["sgd", "adam"], "optimizer.lr": [0.1, 0.01]}"#))
            #expect(jobIds.count == 4)
            let parameters = try await api.study(id)["jobs"]?.array?.compactMap { $0["parameters"]?.encodedString() } ?? []
            #expect(Set(parameters).count == 4)
        }
    }

    @Test("A path whose parent is not in the base spec answers 422 naming the parameter, and nothing is queued")
    func badPaths() async throws {
        try await withServer { api in
            let cases: [(parameters: String, path: String, words: [String])] = [
                (#"{"optimizr.lr": [0.1]}"#, "parameters.optimizr.lr", ["optimizr does not exist"]),
                (#"{"model.layers[5].units": [4, 8]}"#, "parameters.model.layers[5].units", ["model.layers[5] does not exist", "has 2 elements"]),
                (#"{"loss.label_smoothing": [0.1]}"#, "parameters.loss.label_smoothing", ["loss is a string", "set the whole"]),
                (#"{"optimizer..lr": [0.1]}"#, "parameters.optimizer..lr", ["not a path"]),
                (#"{"model.layers[x].units": [4]}"#, "parameters.model.layers[x].units", ["not a path"]),
            ]
            for (parameters, path, words) in cases {
                var request = try moonsStudy(parameters: parameters)
                if parameters.contains("loss") {
                    guard case .object(var fields) = request, case .object(var base)? = fields["base"] else { continue }
                    base["loss"] = "cross_entropy"
                    fields["base"] = .object(base)
                    request = .object(fields)
                }
                let error = try expectError(try await api.post("/v1/studies", json: request), .unprocessableContent,
                                            code: "invalid", naming: words)
                #expect(error.paths == [path], "\(error.allText)")
            }
            try await api.expectNothingQueued()
        }
    }

    @Test("A combination whose spec is invalid answers 422 naming the parameter's value, and no job is queued")
    func invalidCombination() async throws {
        try await withServer { api in
            let response = try await api.post("/v1/studies", json: try moonsStudy(
                parameters: #"{"optimizer.type": ["sgd", "adam"], "optimizer.lr": [0.1, 0.01, -1]}"#))
            let error = try expectError(response, .unprocessableContent, code: "invalid", naming: ["must be > 0", "-1"])
            // Reported once, though two combinations have it.
            #expect(error.paths == ["parameters.optimizer.lr[2]"], "\(error.allText)")

            // Problems inside a whole object name the object and the key.
            let objects = try await api.post("/v1/studies", json: try moonsStudy(
                parameters: #"{"optimizer": [{"type": "adam"}, {"type": "sgd", "betas": [0.9, 0.99]}, {"type": "sgd", "lrr": 0.1}]}"#))
            let objectError = try expectError(objects, .unprocessableContent, code: "invalid",
                                              naming: ["optimizer.betas: does not apply to the sgd optimizer", "optimizer.lrr: unknown key"])
            #expect(Set(objectError.paths) == ["parameters.optimizer[1]", "parameters.optimizer[2]"], "\(objectError.allText)")

            // A problem of the base itself is reported under base.
            var request = try moonsStudy(parameters: #"{"optimizer.lr": [0.1, 0.01]}"#)
            if case .object(var fields) = request, case .object(var base)? = fields["base"] {
                base["dataset"] = ["name": "nowhere"]
                fields["base"] = .object(base)
                request = .object(fields)
            }
            let baseError = try expectError(try await api.post("/v1/studies", json: request), .unprocessableContent,
                                            naming: ["no dataset named \"nowhere\""])
            #expect(baseError.paths == ["base.dataset.name"])

            // A value the model cannot take is the parameter's problem.
            let units = try await api.post("/v1/studies", json: try moonsStudy(parameters: #"{"model.layers[1].units": [2, 3]}"#))
            let unitsError = try expectError(units, .unprocessableContent, naming: ["3 outputs", "2 classes"])
            #expect(unitsError.paths == ["parameters.model.layers[1].units[1]"], "\(unitsError.allText)")

            // A problem of the base that only some combinations have says which.
            var nesterov = try moonsStudy(parameters: #"{"optimizer.momentum": [0, 0.9]}"#)
            if case .object(var fields) = nesterov, case .object(var base)? = fields["base"] {
                base["optimizer"] = ["type": "sgd", "lr": 0.1, "nesterov": true]
                fields["base"] = .object(base)
                nesterov = .object(fields)
            }
            let someError = try expectError(try await api.post("/v1/studies", json: nesterov), .unprocessableContent,
                                            naming: ["requires momentum > 0", "in 1 of 2 combinations, e.g. #1: optimizer.momentum=0"])
            #expect(someError.paths == ["base.optimizer.nesterov"], "\(someError.allText)")

            try await api.expectNothingQueued()
        }
    }

    @Test("A grid with more combinations than max_jobs answers 422 naming search.max_jobs; a larger max_jobs takes it")
    func tooManyCombinations() async throws {
        try await withServer { api in
            let parameters = #"{"optimizer.lr": [0.1, 0.03, 0.01], "regularization.l2": [0, 0.001, 0.01], "training.batch_size": [16, 32, 64]}"#
            let response = try await api.post("/v1/studies", json: try moonsStudy(parameters: parameters))
            let error = try expectError(response, .unprocessableContent, code: "invalid", naming: ["27 combinations", "3 × 3 × 3", "max_jobs 20"])
            #expect(error.paths == ["search.max_jobs"])
            try await api.expectNothingQueued()

            let (_, jobIds) = try await api.createStudy(try moonsStudy(search: #"{"strategy": "grid", "max_jobs": 27}"#, parameters: parameters))
            #expect(jobIds.count == 27)
        }
    }

    @Test("Malformed studies answer 422 with every problem: grid distributions, bad bounds, objective, search, base")
    func malformedStudies() async throws {
        try await withServer { api in
            let base = try Specs.moons().encodedString()
            let response = try await api.post("/v1/studies", body: """
                {"name": "", "base": \(base), "search": {"strategy": "bayes", "max_jobs": 0},
                 "parameters": {"optimizer.lr": {"log_uniform": [0.1, 0.001]}, "regularization.l2": {"uniform": [0]},
                                "training.epochs": 5, "training.batch_size": [], "optimizer.eps": {"normal": [0, 1]}},
                 "objective": {"metric": "val_loss", "mode": "lowest"}, "extra": 1}
                """)
            let error = try expectError(response, .unprocessableContent, code: "invalid")
            #expect(Set(error.paths) == [
                "name", "search.strategy", "search.max_jobs", "parameters.optimizer.lr.log_uniform", "parameters.regularization.l2.uniform",
                "parameters.training.epochs", "parameters.training.batch_size", "parameters.optimizer.eps", "objective.mode", "extra",
            ], "\(error.allText)")

            let grid = try await api.post("/v1/studies", json: try moonsStudy(parameters: #"{"optimizer.lr": {"log_uniform": [0.0001, 0.1]}}"#))
            try expectError(grid, .unprocessableContent, naming: ["a grid search takes a list of values", "random"])

            let logBounds = try await api.post("/v1/studies", json: try moonsStudy(
                search: #"{"strategy": "random"}"#, parameters: #"{"optimizer.lr": {"log_uniform": [0, 0.1]}}"#))
            try expectError(logBounds, .unprocessableContent, naming: ["parameters.optimizer.lr.log_uniform", "> 0"])

            let noBase = try await api.post("/v1/studies", body: #"{"parameters": {"optimizer.lr": [0.1]}}"#)
            #expect(try expectError(noBase, .unprocessableContent, naming: ["required"]).paths == ["base"])
            let noParameters = try await api.post("/v1/studies", body: #"{"base": \#(base)}"#)
            #expect(try expectError(noParameters, .unprocessableContent).paths == ["parameters"])
            try expectError(try await api.post("/v1/studies", body: "[]"), .unprocessableContent, naming: ["must be an object"])
            try expectError(try await api.post("/v1/studies", body: "{"), .badRequest, code: "malformed_json")
            try await api.expectNothingQueued()
        }
    }

    @Test("The objective's mode defaults to max for accuracies and min for losses")
    func objectiveDefaults() async throws {
        try await withServer { api in
            for (metric, mode) in [("val_accuracy", "max"), ("train_loss", "min"), ("test_accuracy", "max"), ("val_loss", "min")] {
                let (id, _) = try await api.createStudy(try moonsStudy(parameters: #"{"optimizer.lr": [0.1]}"#, objective: #"{"metric": "\#(metric)"}"#))
                #expect(try await api.study(id)["objective"] == ["metric": .string(metric), "mode": .string(mode)])
            }
            let bad = try await api.post("/v1/studies", json: try moonsStudy(parameters: #"{"optimizer.lr": [0.1]}"#, objective: #"{"metric": "test_loss"}"#))
            try expectError(bad, .unprocessableContent, naming: ["objective.metric", "val_accuracy"])
        }
    }

    @Test("A study is running while a job is queued, and cancelled once all are cancelled; the list shows it, newest first")
    func statusAndList() async throws {
        try await withServer { api in
            let (older, _) = try await api.createStudy(try moonsStudy(name: "older", parameters: #"{"optimizer.lr": [0.1]}"#))
            let (id, jobIds) = try await api.createStudy(try moonsStudy(name: "newer", parameters: #"{"optimizer.lr": [0.1, 0.01]}"#))
            #expect(try await api.post("/v1/jobs/\(jobIds[0])/cancel").status == .accepted)
            #expect(try await api.study(id)["status"] == "running")
            #expect(try await api.post("/v1/jobs/\(jobIds[1])/cancel").status == .accepted)
            #expect(try await api.study(id)["status"] == "cancelled")

            let list = try await api.get("/v1/studies")
            #expect(list.status == .ok)
            let studies = try #require(try list.json()["studies"]?.array)
            #expect(studies.compactMap { $0["id"]?.string } == [id, older])
            #expect(studies[0]["name"] == "newer")
            #expect(studies[0]["status"] == "cancelled")
            #expect(studies[0]["job_count"]?.int == 2)
            #expect(studies[0]["counts"]?["cancelled"]?.int == 2)
            #expect(studies[0]["counts"]?["queued"]?.int == 0)
            #expect(studies[1]["status"] == "running")
            #expect(studies[1]["counts"]?["queued"]?.int == 1)
            #expect(studies[0]["jobs"] == nil && studies[0]["spec"] == nil)

            // Deleting a job takes it out of its study; the study stays.
            #expect(try await api.delete("/v1/jobs/\(jobIds[0])").status == .noContent)
            #expect(try await api.study(id)["jobs"]?.array?.compactMap { $0["id"]?.string } == [jobIds[1]])

            try expectError(try await api.get("/v1/studies/st_unknown"), .notFound, code: "not_found", naming: ["st_unknown"])
        }
    }
}

extension StudyTests {
    @Test("openapi.yaml documents the study endpoints and the status page has a Studies section")
    func documentedAndShown() async throws {
        try await withServer { api in
            let yaml = try await api.get("/openapi.yaml").text
            for needle in ["/v1/studies:", "/v1/studies/{id}:", "StudyRequest:", "Study:", "StudyJob:", "ParameterDomain:", "study_id:"] {
                #expect(yaml.contains(needle), "openapi.yaml does not describe \(needle)")
            }
            let page = try await api.get("/")
            #expect(page.status == .ok)
            #expect(page.text.contains("id=\"studies-body\"") && page.text.contains("id=\"chart-study\""))
            let script = try await api.get("/app.js").text
            #expect(script.contains("\"/v1/studies\""))
        }
    }
}

/// Studies trained by the worker pool.
@Suite("Studies through the worker pool")
struct StudyTrainingTests {
    @Test("Jobs are ranked by the objective, best first, with the best epoch's metrics; the study succeeds")
    func rankingByObjective() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            // Three learning rates far apart: their validation losses after a few epochs differ.
            let (id, jobIds) = try await api.createStudy(try moonsStudy(
                name: "rates", epochs: 4, parameters: #"{"optimizer.lr": [0.00001, 0.05, 0.001]}"#, objective: #"{"metric": "val_loss"}"#))
            #expect(jobIds.count == 3)
            for jobId in jobIds {
                #expect(try await api.waitUntilFinished(jobId)["status"] == "succeeded")
            }
            let study = try await api.study(id)
            #expect(study["status"] == "succeeded")
            let jobs = try #require(study["jobs"]?.array)
            #expect(Set(jobs.compactMap { $0["id"]?.string }) == Set(jobIds))

            // Each job's best is the row of its lowest validation loss.
            var values: [Double] = []
            for job in jobs {
                let jobId = try #require(job["id"]?.string)
                let rows = try #require(try await api.get("/v1/jobs/\(jobId)/metrics").json()["epochs"]?.array)
                let bestRow = try #require(rows.min { ($0["val_loss"]?.number ?? .infinity) < ($1["val_loss"]?.number ?? .infinity) })
                let best = try #require(job["best"])
                #expect(best["epoch"] == bestRow["epoch"])
                for key in ["val_loss", "val_accuracy", "train_loss", "train_accuracy"] {
                    #expect(best[key] == bestRow[key], "\(key)")
                }
                #expect(best.object.map { Set($0.keys) } == ["epoch", "val_loss", "val_accuracy", "train_loss", "train_accuracy", "test_accuracy"])
                #expect(job["objective_value"] == bestRow["val_loss"])
                #expect(job["status"] == "succeeded")
                values.append(try #require(bestRow["val_loss"]?.number))
            }
            #expect(values == values.sorted(), "ranked best (lowest) first: \(values)")
            #expect(jobs.compactMap { $0["rank"]?.int } == [1, 2, 3])
            #expect(study["best_job"] == jobs[0]["id"])
            // lr 1e-5 barely moves in 4 epochs: it is last.
            #expect(jobs.last?["parameters"] == ["optimizer.lr": 0.00001])

            // The same jobs ranked by accuracy, maximized: a second study would train again, so check the
            // ordering rule on this one's numbers instead.
            let accuracies = jobs.compactMap { $0["best"]?["val_accuracy"]?.number }
            #expect(accuracies.count == 3)
        }
    }

    @Test("Jobs without the objective's value come last")
    func jobsWithoutValueLast() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            // test_accuracy needs a test split: only the second job has one.
            let (id, jobIds) = try await api.createStudy(try moonsStudy(
                name: "test-split", epochs: 2, parameters: #"{"test": [{"split": 0}, {"split": 0.25}]}"#, objective: #"{"metric": "test_accuracy"}"#))
            for jobId in jobIds { #expect(try await api.waitUntilFinished(jobId)["status"] == "succeeded") }
            let study = try await api.study(id)
            let jobs = try #require(study["jobs"]?.array)
            #expect(jobs.compactMap { $0["id"]?.string } == [jobIds[1], jobIds[0]])
            #expect(jobs[0]["rank"]?.int == 1 && jobs[1]["rank"] == .null)
            #expect(jobs[0]["objective_value"]?.number != nil && jobs[1]["objective_value"] == .null)
            #expect(jobs[0]["best"]?["test_accuracy"] == jobs[0]["objective_value"])
            #expect(jobs[1]["best"]?["test_accuracy"] == .null)
            #expect(jobs[1]["best"]?["epoch"]?.int == 2)  // the last epoch, still reported
            #expect(study["best_job"] == .string(jobIds[1]))
        }
    }
}

/// The example study of `examples/`.
@Suite("Example study")
struct ExampleStudyTests {
    @Test("examples/digits-optimizers-study.json queues one job per optimizer on the uploaded digits")
    func digitsOptimizers() async throws {
        try await withServer { api in
            let dataset = try await api.uploadShared("digits.csv", name: "digits")
            let text = try String(contentsOf: RepositoryFiles.example("digits-optimizers-study.json"), encoding: .utf8)
            let response = try await api.post("/v1/studies", body: text)
            let types = ["gd", "sgd", "sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "nadam", "lbfgs"]
            #expect(response.status == .created, "\(response.text)")
            let jobIds = try response.json()["job_ids"]?.array?.compactMap(\.string) ?? []
            #expect(jobIds.count == types.count)
            for (jobId, type) in zip(jobIds, types) {
                let job = try await api.job(jobId)
                #expect(job["spec"]?["optimizer"]?["type"] == .string(type))
                #expect(job["spec"]?["dataset"] == ["id": dataset["id"]!])
                #expect(job["spec"]?["test"] == ["split": 0.2])
            }
            let study = try await api.study(try #require(try response.json()["id"]?.string))
            #expect(study["objective"] == ["metric": "val_accuracy", "mode": "max"])
        }
    }
}
