import Datasets
import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

// MARK: - Files made in the test

/// The first `count` rows of `shared/datasets/digits.csv`: 8×8 grey levels 0–16 and a digit label.
struct DigitRows {
    var pixels: [[UInt8]] = []
    var labels: [UInt8] = []

    init(count: Int) throws {
        let text = try String(contentsOf: RepositoryFiles.dataset("digits.csv"), encoding: .utf8)
        for line in text.split(whereSeparator: \.isNewline).dropFirst().prefix(count) {
            let cells = line.split(separator: ",").map { UInt8($0.trimmingCharacters(in: .whitespaces))! }
            pixels.append(Array(cells.dropLast()))
            labels.append(cells.last!)
        }
    }

    /// MNIST's layout: `00 00 08 03`, N, 8, 8 (big-endian), then the pixels as ubyte.
    var idxImages: Data { ArrayFiles.idx(type: 0x08, shape: [pixels.count, 8, 8], values: pixels.flatMap { $0 }) }
    /// `00 00 08 01`, N, then the labels as ubyte.
    var idxLabels: Data { ArrayFiles.idx(type: 0x08, shape: [labels.count], values: labels) }
    /// `np.save` of the pixels as float32, shape (N, 64).
    var npyFeatures: Data {
        ArrayFiles.npy(descr: "<f4", shape: [pixels.count, 64],
                       values: pixels.flatMap { $0 }.flatMap { withUnsafeBytes(of: Float($0).bitPattern.littleEndian) { Array($0) } })
    }
    /// `np.save` of the labels as int64, shape (N,).
    var npyLabels: Data {
        ArrayFiles.npy(descr: "<i8", shape: [labels.count], values: labels.flatMap { withUnsafeBytes(of: Int64($0).littleEndian) { Array($0) } })
    }
    /// float64 (N, 65): the pixels, then the label as the last column (`target=last`).
    var npyTable: Data {
        let rows = zip(pixels, labels).map { $0.map(Double.init) + [Double($1)] }
        return ArrayFiles.npy(descr: "<f8", shape: [rows.count, 65],
                              values: rows.flatMap { $0 }.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } })
    }
}

enum ArrayFiles {
    static func idx(type: UInt8, shape: [Int], values: [UInt8]) -> Data {
        var bytes: [UInt8] = [0, 0, type, UInt8(shape.count)]
        for dimension in shape { bytes += withUnsafeBytes(of: UInt32(dimension).bigEndian) { Array($0) } }
        return Data(bytes + values)
    }

    /// A version 1.0 .npy file with numpy's header layout.
    static func npy(descr: String, shape: [Int], values: [UInt8]) -> Data {
        NPYWriter.file(descr: descr, shape: shape, values: values)
    }

    /// A gzip file (RFC 1952) whose deflate stream is stored blocks: valid gzip that any reader
    /// must accept, made without a compressor.
    static func gzip(_ data: Data) -> Data {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
        let bytes = [UInt8](data)
        var offset = 0
        repeat {
            let length = min(65535, bytes.count - offset)
            let final: UInt8 = offset + length == bytes.count ? 1 : 0
            out.append(final)
            out += withUnsafeBytes(of: UInt16(length).littleEndian) { Array($0) }
            out += withUnsafeBytes(of: (~UInt16(length)).littleEndian) { Array($0) }
            out += bytes[offset..<(offset + length)]
            offset += length
        } while offset < bytes.count
        out += withUnsafeBytes(of: crc32(bytes).littleEndian) { Array($0) }
        out += withUnsafeBytes(of: UInt32(truncatingIfNeeded: bytes.count).littleEndian) { Array($0) }
        return Data(out)
    }

    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
        }
        return ~crc
    }
}

extension APIClient {
    /// Uploads an array file as `application/octet-stream` and returns the response.
    func uploadArray(_ data: Data, query: String) async throws -> APIResponse {
        try await upload(data, query: query, contentType: "application/octet-stream")
    }

    /// Uploads images then labels; returns the dataset id (expects 201, then 200).
    func uploadImagesAndLabels(_ images: Data, _ labels: Data, format: String = "idx", name: String = "digits-idx",
                               sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let created = try await uploadArray(images, query: "name=\(name)&format=\(format)")
        #expect(created.status == .created, "\(created.text)", sourceLocation: sourceLocation)
        let id = try #require(try created.json()["id"]?.string, sourceLocation: sourceLocation)
        let labelled = try await uploadArray(labels, query: "format=\(format)&labels_of=\(id)")
        #expect(labelled.status == .ok, "\(labelled.text)", sourceLocation: sourceLocation)
        return id
    }
}

/// A small dense network on 1×8×8 digit images.
func digitImagesSpec(datasetId: String, epochs: Int = 10, inputShape: String? = nil) throws -> JSONValue {
    try JSONValue("""
        {"dataset": {"id": "\(datasetId)"}, "validation": {"split": 0.2},
         "model": {\(inputShape.map { "\"input_shape\": \($0), " } ?? "")"layers": [{"type": "flatten"},
                   {"type": "dense", "units": 32, "activation": "relu"}, {"type": "dense", "units": 10}]},
         "optimizer": {"type": "adam", "lr": 0.01},
         "training": {"epochs": \(epochs), "batch_size": 32, "seed": 1}}
        """)
}

// MARK: - Tests

@Suite("IDX and NPY uploads")
struct IDXUploadTests {
    @Test("IDX images, then their labels: the dataset waits for labels, then a job trains on it to success")
    func imagesThenLabelsTrain() async throws {
        let digits = try DigitRows(count: 600)
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let created = try await api.uploadArray(digits.idxImages, query: "name=digits-idx&format=idx")
            #expect(created.status == .created, "\(created.text)")
            let images = try created.json()
            let id = try #require(images["id"]?.string)
            #expect(created.headers[.location] == "/v1/datasets/\(id)")
            #expect(images["format"] == "idx")
            #expect(images["rows"]?.int == 600)
            #expect(images["features"]?.int == 64)
            #expect(images["shape"] == [1, 8, 8])
            #expect(images["task"] == "unlabeled")
            #expect(images["classes"] == .null && images["target"] == .null)
            #expect(images["feature_names"] == .null, "positions within a sample, which shape describes")
            #expect(images["bytes"]?.int == digits.idxImages.count)

            // No job trains on data without labels; the answer says how to upload them.
            let early = try await api.post("/v1/jobs", json: try digitImagesSpec(datasetId: id))
            try expectError(early, .unprocessableContent, code: "invalid", naming: ["\(id) has no labels", "format=idx&labels_of=\(id)"])
            try await api.expectNoJob()

            let labelled = try await api.uploadArray(digits.idxLabels, query: "format=idx&labels_of=\(id)")
            #expect(labelled.status == .ok, "\(labelled.text)")
            let dataset = try labelled.json()
            #expect(dataset["id"]?.string == id)
            #expect(dataset["task"] == "classification")
            #expect(dataset["classes"] == JSONValue.array((0...9).map { .string(String($0)) }))
            #expect(dataset["rows"]?.int == 600 && dataset["shape"] == [1, 8, 8])
            #expect(dataset["bytes"]?.int == digits.idxImages.count + digits.idxLabels.count)
            #expect(try await api.get("/v1/datasets/\(id)").json() == dataset)
            let files = try api.datasetFiles()
            #expect(files.count == 2 && files.contains("\(id).idx") && files.contains { $0.hasPrefix("\(id).labels-") && $0.hasSuffix(".idx") },
                    "\(files)")

            let job = try await api.submit(try digitImagesSpec(datasetId: id))
            let finished = try await api.waitUntilFinished(job)
            #expect(finished["status"] == "succeeded", "\(finished.encodedString())")
            #expect(finished["spec"]?["model"]?["input_shape"] == [1, 8, 8])
            #expect((finished["latest"]?["val_accuracy"]?.number ?? 0) > 0.8, "\(finished["latest"]?.encodedString() ?? "")")

            // Deleting the dataset removes both files.
            #expect(try await api.delete("/v1/datasets/\(id)").status == .noContent)
            #expect(try api.datasetFiles() == [])
        }
    }

    @Test("A model input that does not fit the images is a 422 naming both shapes")
    func wrongInputShape() async throws {
        let digits = try DigitRows(count: 50)
        try await withServer { api in
            let id = try await api.uploadImagesAndLabels(digits.idxImages, digits.idxLabels)
            let response = try await api.post("/v1/jobs", json: try digitImagesSpec(datasetId: id, inputShape: "[1, 28, 28]"))
            let error = try expectError(response, .unprocessableContent, code: "invalid", naming: ["[1, 28, 28]", "[1, 8, 8]"])
            #expect(error.paths.contains("model.input_shape"))
            try await api.expectNoJob()
        }
    }

    @Test("Labels whose count differs from the images' is a 422 naming both counts; nothing is left behind")
    func labelCountMismatch() async throws {
        let digits = try DigitRows(count: 40)
        let fewer = try DigitRows(count: 39)
        try await withServer { api in
            let created = try await api.uploadArray(digits.idxImages, query: "name=digits&format=idx")
            let id = try #require(try created.json()["id"]?.string)
            let response = try await api.uploadArray(fewer.idxLabels, query: "format=idx&labels_of=\(id)")
            try expectError(response, .unprocessableContent, code: "invalid", naming: ["39 labels", "\(id) has 40 samples"])
            // The images are still there, still waiting; the labels file is not.
            #expect(try api.datasetFiles() == ["\(id).idx"])
            #expect(try await api.get("/v1/datasets/\(id)").json()["task"] == "unlabeled")
            // The right labels still attach.
            let labelled = try await api.uploadArray(digits.idxLabels, query: "format=idx&labels_of=\(id)")
            #expect(labelled.status == .ok, "\(labelled.text)")
        }
    }

    @Test("gzip-compressed IDX images and labels upload and train like plain ones")
    func gzip() async throws {
        let digits = try DigitRows(count: 200)
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let images = ArrayFiles.gzip(digits.idxImages)
            let id = try await api.uploadImagesAndLabels(images, ArrayFiles.gzip(digits.idxLabels))
            let dataset = try await api.get("/v1/datasets/\(id)").json()
            #expect(dataset["rows"]?.int == 200 && dataset["shape"] == [1, 8, 8] && dataset["task"] == "classification")
            // Stored as uploaded, compressed.
            #expect(try api.datasetFiles().contains("\(id).idx.gz"))
            let job = try await api.submit(try digitImagesSpec(datasetId: id, epochs: 2))
            let finished = try await api.waitUntilFinished(job)
            #expect(finished["status"] == "succeeded", "\(finished.encodedString())")
        }
    }

    @Test("NPY features with NPY labels, and an NPY table with target=last, train")
    func npy() async throws {
        let digits = try DigitRows(count: 300)
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let id = try await api.uploadImagesAndLabels(digits.npyFeatures, digits.npyLabels, format: "npy", name: "digits-npy")
            let dataset = try await api.get("/v1/datasets/\(id)").json()
            #expect(dataset["format"] == "npy" && dataset["shape"] == [64] && dataset["rows"]?.int == 300)
            #expect(dataset["task"] == "classification" && dataset["classes"]?.array?.count == 10)

            let table = try await api.uploadArray(digits.npyTable, query: "name=digits-table&format=npy&target=last")
            #expect(table.status == .created, "\(table.text)")
            let tableJSON = try table.json()
            #expect(tableJSON["target"] == "last" && tableJSON["features"]?.int == 64 && tableJSON["shape"] == [64])
            #expect(tableJSON["task"] == "classification" && tableJSON["classes"]?.array?.count == 10)
            let tableId = try #require(tableJSON["id"]?.string)
            // The table's labels came with it.
            let again = try await api.uploadArray(digits.npyLabels, query: "format=npy&labels_of=\(tableId)")
            try expectError(again, .conflict, code: "wrong_state", naming: ["not waiting for labels"])

            for datasetId in [id, tableId] {
                let job = try await api.submit(try digitImagesSpec(datasetId: datasetId, epochs: 3))
                let finished = try await api.waitUntilFinished(job)
                #expect(finished["status"] == "succeeded", "\(finished.encodedString())")
            }
            // Same features, same first row, either way: the table validates against the labelled features.
            let holdOut = try await api.post("/v1/jobs/validate", json: try JSONValue("""
                {"dataset": {"id": "\(id)"}, "validation": {"dataset": "\(tableId)"},
                 "model": {"layers": [{"type": "dense", "units": 10}]}}
                """))
            #expect(holdOut.status == .ok, "\(holdOut.text)")
        }
    }

    @Test("IDX labels may label NPY features (the labels' format is their own)")
    func mixedFormats() async throws {
        let digits = try DigitRows(count: 30)
        try await withServer { api in
            let created = try await api.uploadArray(digits.npyFeatures, query: "format=npy")
            let id = try #require(try created.json()["id"]?.string)
            let labelled = try await api.uploadArray(digits.idxLabels, query: "format=idx&labels_of=\(id)")
            #expect(labelled.status == .ok, "\(labelled.text)")
            #expect(try api.datasetFiles().contains { $0.hasPrefix("\(id).labels-") && $0.hasSuffix(".idx") })
        }
    }

    @Test("Labels uploaded twice: the second is a 409 and its file is removed")
    func labelsTwice() async throws {
        let digits = try DigitRows(count: 20)
        try await withServer { api in
            let id = try await api.uploadImagesAndLabels(digits.idxImages, digits.idxLabels)
            let filesBefore = try api.datasetFiles()
            let again = try await api.uploadArray(digits.idxLabels, query: "format=idx&labels_of=\(id)")
            try expectError(again, .conflict, code: "wrong_state", naming: ["\(id) already has labels"])
            #expect(try api.datasetFiles() == filesBefore)
        }
    }

    @Test("Bad IDX and NPY files are 422s that say what is wrong, and leave nothing behind")
    func badFiles() async throws {
        let digits = try DigitRows(count: 10)
        let cases: [(Data, String, [String])] = [
            (digits.idxImages.dropLast(3), "format=idx", ["truncated", "[10, 8, 8]", "640 bytes"]),
            (Data("p0,label\n1,2\n".utf8), "format=idx", ["not an IDX file"]),
            (digits.npyFeatures, "format=idx", ["NumPy", "format=npy"]),
            (digits.idxLabels, "format=idx", ["labels file", "labels_of"]),
            (digits.idxImages, "format=npy", ["IDX file", "format=idx"]),
            (ArrayFiles.npy(descr: "<f4", shape: [1, 2], values: [0, 0, 0xc0, 0x7f, 0, 0, 0x80, 0x3f]), "format=npy", ["index [0, 0]", "NaN"]),
            (ArrayFiles.npy(descr: "<U3", shape: [1, 1], values: Array(repeating: 0, count: 12)), "format=npy", ["'<U3'", "not supported"]),
            (ArrayFiles.gzip(digits.idxImages).dropLast(12), "format=idx", ["gzip", "truncated"]),
        ]
        try await withServer { api in
            for (file, query, naming) in cases {
                let response = try await api.uploadArray(file, query: "name=bad&\(query)")
                let error = try expectError(response, .unprocessableContent, code: "invalid", naming: naming)
                #expect(error.paths == ["body"], "\(query): \(error.allText)")
                try await api.expectNoDatasetLeft()
            }
        }
    }

    @Test("Query rules: labels_of needs idx or npy and an unlabelled dataset; target and task fit the format")
    func queryRules() async throws {
        let digits = try DigitRows(count: 10)
        try await withServer { api in
            let csv = try await api.uploadShared("iris.csv", name: "iris")
            let csvId = try #require(csv["id"]?.string)
            let filesBefore = try api.datasetFiles()

            let cases: [(String, String, [String])] = [
                ("format=csv&labels_of=\(csvId)", "labels_of", ["only for idx and npy"]),
                ("format=idx&labels_of=ds_nothere", "labels_of", ["no dataset with id ds_nothere"]),
                ("format=idx&labels_of=\(csvId)", "labels_of", ["\(csvId) is a CSV"]),
                ("format=idx&target=label", "target", ["labels_of"]),
                ("format=npy&target=label", "target", ["\"last\""]),
                ("format=idx&labels_of=\(csvId)&target=last", "target", ["leave target out"]),
                ("format=idx&task=classification", "task", ["labels upload"]),
                ("format=parquet", "format", ["csv, idx or npy"]),
            ]
            for (query, path, naming) in cases {
                let response = try await api.uploadArray(digits.idxLabels, query: query)
                let error = try expectError(response, .unprocessableContent, code: "invalid", naming: naming)
                #expect(error.paths.contains(path), "\(query): \(error.allText)")
            }
            #expect(try api.datasetFiles() == filesBefore)
            #expect(try await api.get("/v1/datasets").json()["datasets"]?.array?.count == 1)

            // A JSON body is refused before anything is written, pointing to octet-stream.
            let json = try await api.upload(digits.idxImages, query: "format=idx", contentType: "application/json")
            try expectError(json, .unsupportedMediaType, code: "unsupported_media_type", naming: ["application/octet-stream"])
            // gzip content types are accepted.
            let gzipType = try await api.upload(ArrayFiles.gzip(digits.idxImages), query: "format=idx", contentType: "application/gzip")
            #expect(gzipType.status == .created, "\(gzipType.text)")
        }
    }

    @Test("task on the labels upload decides how labels read")
    func labelsTask() async throws {
        let digits = try DigitRows(count: 30)
        try await withServer { api in
            let created = try await api.uploadArray(digits.idxImages, query: "format=idx")
            let id = try #require(try created.json()["id"]?.string)
            let labelled = try await api.uploadArray(digits.idxLabels, query: "format=idx&labels_of=\(id)&task=regression")
            #expect(labelled.status == .ok, "\(labelled.text)")
            #expect(try labelled.json()["task"] == "regression" && (try labelled.json()["classes"]) == .null)
        }
    }

    @Test("An unlabelled dataset named as a hold-out set is a 422 too")
    func unlabelledHoldOut() async throws {
        let digits = try DigitRows(count: 30)
        try await withServer { api in
            let id = try await api.uploadImagesAndLabels(digits.idxImages, digits.idxLabels)
            let created = try await api.uploadArray(digits.idxImages, query: "format=idx")
            let unlabelled = try #require(try created.json()["id"]?.string)
            let spec = try JSONValue("""
                {"dataset": {"id": "\(id)"}, "test": {"dataset": "\(unlabelled)"},
                 "model": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}}
                """)
            let response = try await api.post("/v1/jobs", json: spec)
            let error = try expectError(response, .unprocessableContent, code: "invalid", naming: ["\(unlabelled) has no labels"])
            #expect(error.paths == ["test.dataset"])
        }
    }
}
