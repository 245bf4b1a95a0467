import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

@Suite("Dataset endpoints")
struct DatasetEndpointTests {
    @Test("Uploading iris.csv answers 201 with 150 rows, 4 features and the three species as classes")
    func uploadIris() async throws {
        try await withServer { api in
            let file = try Data(contentsOf: RepositoryFiles.dataset("iris.csv"))
            let response = try await api.upload(file, query: "name=iris&format=csv&target=species")
            #expect(response.status == .created, "\(response.text)")
            let dataset = try response.json()
            let id = try #require(dataset["id"]?.string)
            #expect(id.hasPrefix("ds_"))
            #expect(response.headers[.location] == "/v1/datasets/\(id)")
            #expect(dataset["name"] == "iris")
            #expect(dataset["format"] == "csv")
            #expect(dataset["rows"]?.int == 150)
            #expect(dataset["features"]?.int == 4)
            #expect(dataset["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"])
            #expect(dataset["target"] == "species")
            #expect(dataset["task"] == "classification")
            #expect(dataset["classes"] == ["setosa", "versicolor", "virginica"])
            #expect(dataset["shape"] == [4])
            #expect(dataset["bytes"]?.int == file.count)
            #expect(dataset["created_at"]?.string?.hasSuffix("Z") == true)
            // Stored under its id; no temporary file is left beside it.
            #expect(try api.datasetFiles() == ["\(id).csv"])
        }
    }

    @Test("Uploading digits.csv finds 1797 rows, 64 features and 10 classes, the target being the last column")
    func uploadDigits() async throws {
        try await withServer { api in
            let dataset = try await api.uploadShared("digits.csv", name: "digits")
            #expect(dataset["rows"]?.int == 1797)
            #expect(dataset["features"]?.int == 64)
            #expect(dataset["target"] == "label")
            #expect(dataset["task"] == "classification")
            let digitClasses = JSONValue((0...9).map { String($0) })
            #expect(dataset["classes"] == digitClasses)
            #expect(dataset["feature_names"]?.array?.count == 64)
        }
    }

    @Test("Datasets are listed newest first, shown by id and deleted with their file")
    func listShowDelete() async throws {
        try await withServer { api in
            let iris = try await api.uploadShared("iris.csv", name: "iris")
            let digits = try await api.uploadShared("digits.csv", name: "digits")
            let irisId = try #require(iris["id"]?.string), digitsId = try #require(digits["id"]?.string)

            let list = try await api.get("/v1/datasets")
            #expect(list.status == .ok)
            #expect(try list.json()["datasets"]?.array?.compactMap { $0["id"]?.string } == [digitsId, irisId])

            let shown = try await api.get("/v1/datasets/\(irisId)")
            #expect(shown.status == .ok)
            let shownDataset = try shown.json()
            #expect(shownDataset == iris, "shown \(shownDataset.encodedString())\nuploaded \(iris.encodedString())")

            let deleted = try await api.delete("/v1/datasets/\(irisId)")
            #expect(deleted.status == .noContent)
            #expect(try api.datasetFiles() == ["\(digitsId).csv"])
            try expectError(try await api.get("/v1/datasets/\(irisId)"), .notFound, code: "not_found", naming: [irisId])
            try expectError(try await api.delete("/v1/datasets/\(irisId)"), .notFound, code: "not_found", naming: [irisId])
            #expect(try await api.get("/v1/datasets").json()["datasets"]?.array?.count == 1)
        }
    }

    @Test("Unknown dataset ids answer 404 with the error envelope")
    func unknownIds() async throws {
        try await withServer { api in
            try expectError(try await api.get("/v1/datasets/ds_nope"), .notFound, code: "not_found", naming: ["ds_nope"])
            try expectError(try await api.delete("/v1/datasets/ds_nope"), .notFound, code: "not_found", naming: ["ds_nope"])
        }
    }

    @Test("A dataset a queued job uses cannot be deleted (409) until the job is cancelled")
    func deleteInUse() async throws {
        try await withServer { api in
            let iris = try await api.uploadShared("iris.csv", name: "iris")
            let datasetId = try #require(iris["id"]?.string)
            let jobId = try await api.submit(try Specs.iris(datasetId: datasetId))

            try expectError(try await api.delete("/v1/datasets/\(datasetId)"), .conflict, code: "wrong_state", naming: [datasetId])
            #expect(try api.datasetFiles() == ["\(datasetId).csv"])

            #expect(try await api.post("/v1/jobs/\(jobId)/cancel").status == .accepted)
            #expect(try await api.delete("/v1/datasets/\(datasetId)").status == .noContent)
            try await api.expectNoDatasetLeft()
        }
    }
}
