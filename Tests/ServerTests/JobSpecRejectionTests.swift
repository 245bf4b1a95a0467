import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// Specs the server must refuse with the right status and every problem named; none may queue a job.
@Suite("Rejected job specs")
struct JobSpecRejectionTests {
    static let layers = #"{"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]}"#

    @Test("Malformed JSON answers 400", arguments: ["/v1/jobs", "/v1/jobs/validate"])
    func malformedJSON(_ route: String) async throws {
        try await withServer { api in
            let response = try await api.post(route, body: #"{"dataset": {"builtin": "moons"}, "model": "#)
            let error = try expectError(response, .badRequest, code: "malformed_json", naming: ["malformed JSON"])
            #expect(error.details.isEmpty)
            try await api.expectNoJob()
        }
    }

    @Test("An empty body answers 400", arguments: ["/v1/jobs", "/v1/jobs/validate"])
    func emptyBody(_ route: String) async throws {
        try await withServer { api in
            try expectError(try await api.post(route, body: nil), .badRequest, code: "empty_body", naming: ["empty"])
            try expectError(try await api.post(route, body: ""), .badRequest, code: "empty_body")
            try await api.expectNoJob()
        }
    }

    @Test("A JSON value that is not an object answers 422")
    func notAnObject() async throws {
        try await withServer { api in
            try expectError(try await api.post("/v1/jobs", body: "[1, 2]"), .unprocessableContent, code: "invalid", naming: ["must be an object"])
            try await api.expectNoJob()
        }
    }

    @Test("Unknown keys answer 422 with their paths, a typo is never ignored")
    func unknownKeys() async throws {
        try await withServer { api in
            let spec = """
                {"dataset": {"builtin": "moons"}, "model": \(Self.layers),
                 "optimzer": {"type": "sgd"}, "training": {"epochs": 2, "batchsize": 16},
                 "loss": {"type": "cross_entropy", "smoothing": 0.1}}
                """
            let response = try await api.post("/v1/jobs", body: spec)
            let error = try expectError(response, .unprocessableContent, code: "invalid", naming: ["unknown key"])
            #expect(Set(error.paths) == ["optimzer", "training.batchsize", "loss.smoothing"])
            try await api.expectNoJob()
        }
    }

    @Test("Several problems are all listed in one 422")
    func severalProblems() async throws {
        try await withServer { api in
            let spec = """
                {"dataset": {"builtin": "moons", "samples": 5},
                 "model": {"layers": [{"type": "dense", "units": 0}, {"type": "dropout", "rate": 1.5}, {"type": "dense", "units": 2}]},
                 "optimizer": {"type": "adam", "lr": -0.1},
                 "training": {"epochs": 0, "batch_size": 32.5},
                 "priority": "high"}
                """
            for route in ["/v1/jobs", "/v1/jobs/validate"] {
                let error = try expectError(try await api.post(route, body: spec), .unprocessableContent, code: "invalid",
                                            naming: ["must be > 0, got -0.1"])
                let expected: Set = ["dataset.samples", "model.layers[0].units", "model.layers[1].rate", "optimizer.lr",
                                     "training.epochs", "training.batch_size", "priority"]
                #expect(Set(error.paths) == expected, "\(error.allText)")
                #expect(error.message.contains("\(expected.count) problems"), "\(error.message)")
            }
            try await api.expectNoJob()
        }
    }

    @Test("A spec naming an unknown dataset id answers 422 naming dataset.id")
    func unknownDatasetId() async throws {
        try await withServer { api in
            let spec = #"{"dataset": {"id": "ds_missing"}, "model": {"layers": [{"type": "dense", "units": 3}]}}"#
            for route in ["/v1/jobs", "/v1/jobs/validate"] {
                let error = try expectError(try await api.post(route, body: spec), .unprocessableContent, code: "invalid", naming: ["ds_missing"])
                #expect(error.paths == ["dataset.id"])
            }
            let byName = #"{"dataset": {"name": "nonesuch"}, "model": {"layers": [{"type": "dense", "units": 3}]}}"#
            let error = try expectError(try await api.post("/v1/jobs", body: byName), .unprocessableContent, naming: ["nonesuch"])
            #expect(error.paths == ["dataset.name"])
            try await api.expectNoJob()
        }
    }

    @Test("A model that does not fit its data answers 422 naming the layer")
    func modelDoesNotFitData() async throws {
        try await withServer { api in
            let iris = try await api.uploadShared("iris.csv", name: "iris")
            let id = try #require(iris["id"]?.string)
            let spec = """
                {"dataset": {"id": "\(id)"},
                 "model": {"input_shape": [5], "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]}}
                """
            let error = try expectError(try await api.post("/v1/jobs", body: spec), .unprocessableContent, code: "invalid",
                                        naming: ["3 classes", "4 features"])
            #expect(Set(error.paths) == ["model.input_shape", "model.layers[1].units"])
            try await api.expectNoJob()
        }
    }

    @Test("Parts of the spec that are not supported yet answer 422 saying so, each with its path")
    func notSupportedYet() async throws {
        try await withServer { api in
            let spec = """
                {"task": "gan", "dataset": {"builtin": "moons"},
                 "model": {"generator": {"layers": [{"type": "dense", "units": 2}]}, "discriminator": {"layers": [{"type": "dense", "units": 1}]}},
                 "early_stopping": {"monitor": "val_loss"}, "distributed": {"processes": 2}}
                """
            let error = try expectError(try await api.post("/v1/jobs", body: spec), .unprocessableContent, code: "invalid")
            let expected: Set = ["early_stopping", "distributed"]
            #expect(Set(error.paths) == expected, "\(error.allText)")
            for detail in error.details {
                #expect(detail.message.contains("not supported yet"), "\(detail.path): \(detail.message)")
            }
            let later = #"{"dataset": {"builtin": "moons"}, "model": {"preset": "mlp"}, "distributed": {"replicas": 2, "hosts": ["a", "b"]}}"#
            let laterError = try expectError(try await api.post("/v1/jobs", body: later), .unprocessableContent, naming: ["applies to processes"])
            #expect(Set(laterError.paths) == ["distributed.hosts"])
            try await api.expectNoJob()
        }
    }

    @Test("A content type other than JSON answers 415")
    func wrongContentType() async throws {
        try await withServer { api in
            let spec = try Specs.moons().encodedString()
            let response = try await api.post("/v1/jobs", body: spec, contentType: "text/csv")
            try expectError(response, .unsupportedMediaType, code: "unsupported_media_type", naming: ["text/csv", "application/json"])
            try await api.expectNoJob()
        }
    }

    @Test("A spec over the JSON body limit answers 413")
    func tooLarge() async throws {
        try await withServer(ServerOptions(maxJSONBytes: 200)) { api in
            let spec = try Specs.moons().encodedString()
            #expect(spec.utf8.count > 200)
            try expectError(try await api.post("/v1/jobs", body: spec), .contentTooLarge, code: "body_too_large", naming: ["200"])
            try await api.expectNoJob()
        }
    }
}

@Suite("Duplicate keys")
struct DuplicateKeyTests {
    @Test("a spec that gives a key twice is a 422 naming it, and nothing is queued")
    func duplicateKeyInASpec() async throws {
        try await withServer { api in
            let spec = #"{"dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "dense", "units": 2}]}, "training": {"epochs": 2, "epochs": 200}}"#
            let error = try expectError(try await api.post("/v1/jobs", body: spec), .unprocessableContent, code: "invalid", naming: ["twice"])
            #expect(error.paths == ["training.epochs"])
            try await api.expectNoJob()
        }
    }
}
