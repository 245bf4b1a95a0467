import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// A CSV file the server must refuse, and what its answer must name.
struct BadCSV: Sendable, CustomTestStringConvertible {
    let label: String
    let text: String
    let naming: [String]
    var testDescription: String { label }

    static let all: [BadCSV] = [
        BadCSV(label: "a ragged row", text: "a,b,label\n1,2,x\n3,4,y\n5,6\n7,8,z\n", naming: ["row 3", "2 cells", "the header has 3"]),
        BadCSV(label: "a non-numeric feature cell", text: "a,b,label\n1,2,x\n3,abc,y\n", naming: ["row 2", "'b'", "'abc'", "not a number"]),
        BadCSV(label: "a NaN cell", text: "a,b,label\n1,2,x\nNaN,4,y\n", naming: ["row 2", "'a'", "not finite"]),
        BadCSV(label: "an infinite cell", text: "a,b,label\n1,2,x\n3,4,y\n5,-inf,z\n", naming: ["row 3", "'b'", "not finite"]),
        BadCSV(label: "an empty cell", text: "a,b,label\n1,,x\n", naming: ["row 1", "'b'", "empty"]),
        BadCSV(label: "an empty file", text: "", naming: ["empty"]),
        BadCSV(label: "a header without rows", text: "a,b,label\n", naming: ["no data rows"]),
    ]
}

@Suite("Rejected dataset uploads")
struct DatasetUploadRejectionTests {
    @Test("A bad CSV answers 422 naming the row and column, and leaves no file or row behind", arguments: BadCSV.all)
    func badCSV(_ csv: BadCSV) async throws {
        try await withServer { api in
            let response = try await api.upload(Data(csv.text.utf8), query: "name=bad")
            try expectError(response, .unprocessableContent, code: "invalid", naming: csv.naming)
            try await api.expectNoDatasetLeft()
        }
    }

    @Test("A body over --max-upload-bytes answers 413 and leaves nothing behind")
    func tooLarge() async throws {
        try await withServer(ServerOptions(maxUploadBytes: 1000)) { api in
            let file = try Data(contentsOf: RepositoryFiles.dataset("iris.csv"))
            #expect(file.count > 1000)
            let response = try await api.upload(file, query: "name=iris")
            try expectError(response, .contentTooLarge, code: "body_too_large", naming: ["1000"])
            try await api.expectNoDatasetLeft()

            // A file under the limit still goes through.
            let small = try await api.upload(Data("x,label\n1,a\n2,b\n".utf8), query: "name=small")
            #expect(small.status == .created, "\(small.text)")
        }
    }

    @Test("A JSON content type answers 415 and leaves nothing behind")
    func wrongContentType() async throws {
        try await withServer { api in
            let file = try Data(contentsOf: RepositoryFiles.dataset("iris.csv"))
            let response = try await api.upload(file, query: "name=iris", contentType: "application/json")
            try expectError(response, .unsupportedMediaType, code: "unsupported_media_type", naming: ["application/json", "text/csv"])
            try await api.expectNoDatasetLeft()
        }
    }

    @Test("labels_of on a CSV upload answers 422: a CSV's target is one of its columns")
    func labelsOfCSV() async throws {
        try await withServer { api in
            let labels = try await api.upload(Data("x,label\n1,a\n".utf8), query: "name=l&labels_of=ds_abc")
            #expect(try expectError(labels, .unprocessableContent, naming: ["only for idx and npy"]).paths == ["labels_of"])
            try await api.expectNoDatasetLeft()
        }
    }

    @Test("A target column that is not in the header answers 422 naming it and the columns there are")
    func unknownTarget() async throws {
        try await withServer { api in
            let file = try Data(contentsOf: RepositoryFiles.dataset("iris.csv"))
            let response = try await api.upload(file, query: "name=iris&target=colour")
            try expectError(response, .unprocessableContent, code: "invalid", naming: ["'colour'", "species"])
            try await api.expectNoDatasetLeft()
        }
    }

    @Test("Several problems in the upload's query are reported at once")
    func badQuery() async throws {
        try await withServer { api in
            let response = try await api.upload(Data("x,label\n1,a\n".utf8), query: "name=&format=xlsx&task=clustering")
            let error = try expectError(response, .unprocessableContent, code: "invalid")
            #expect(Set(error.paths) == ["name", "format", "task"])
            try await api.expectNoDatasetLeft()
        }
    }
}
