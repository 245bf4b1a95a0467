import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing
import Training

/// The whole path over a real port: upload, train, download, predict.
@Suite("Live end to end")
struct LiveEndToEndTests {
    @Test("Digits trained on a live server reach 95% test accuracy, and predict what the downloaded weights compute")
    func digits() async throws {
        try await withServer(ServerOptions(runsWorkers: true), setup: .live) { api in
            #expect(api.port != nil)
            let dataset = try await api.uploadShared("digits.csv", name: "digits")
            #expect(dataset["rows"]?.int == 1797)

            // The example names the dataset "digits"; the server pins the job to the upload's id.
            let spec = try String(contentsOf: RepositoryFiles.example("digits-mlp.json"), encoding: .utf8)
            let submitted = try await api.post("/v1/jobs", body: spec)
            #expect(submitted.status == .created, "\(submitted.text)")
            let id = try #require(try submitted.json()["id"]?.string)
            #expect(try await api.job(id)["spec"]?["dataset"] == ["id": dataset["id"]!])

            let job = try await api.waitUntilFinished(id, timeout: .seconds(300))
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            let testAccuracy = try #require(job["result"]?["test_accuracy"]?.number)
            #expect(testAccuracy >= 0.95)
            #expect(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array?.count == 40)

            // The model file: tensors in torch layout and the metadata of API.md § Models.
            let download = try await api.get("/v1/jobs/\(id)/model")
            #expect(download.status == .ok)
            #expect(download.headers[.contentType] == "application/octet-stream")
            let file = try SafeTensorsFile.parse(download.data)
            #expect(file.metadata["format"] == "descent")
            #expect(file.metadata["version"] == "1")
            let shapes = Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, $0.shape) })
            #expect(shapes == ["layers.0.weight": [128, 64], "layers.0.bias": [128], "layers.2.weight": [64, 128], "layers.2.bias": [64],
                               "layers.3.weight": [10, 64], "layers.3.bias": [10]])
            let architecture = try JSONValue(try #require(file.metadata["architecture"]))
            let layers = try #require(architecture["layers"]?.array)
            #expect(architecture["input_shape"] == [64])
            #expect(try JSONValue(try #require(file.metadata["input_shape"])) == [64])
            let classesJSON = try JSONValue(try #require(file.metadata["classes"]))
            let classes = classesJSON.array?.compactMap(\.string) ?? []
            #expect(classes == (0...9).map(String.init))
            let preprocessing = try JSONValue(try #require(file.metadata["preprocessing"]))
            let mean = preprocessing["mean"]?.array?.compactMap(\.number) ?? []
            let std = preprocessing["std"]?.array?.compactMap(\.number) ?? []
            #expect(mean.count == 64 && std.count == 64)

            // The engine reads it back too.
            let model = try TrainedModel.load(download.data)
            #expect(model.network.parameterCount == job["result"]?["parameters"]?.int)
            #expect(model.classes == classes)

            // Predictions over HTTP equal a forward pass computed here from the downloaded tensors.
            let rows = try Self.digitsRows(every: 97)
            let inputs = JSONValue.array(rows.map { row in .array(row.features.map { JSONValue($0) }) })
            let prediction = try await api.post("/v1/jobs/\(id)/predict", json: ["inputs": inputs])
            #expect(prediction.status == .ok, "\(prediction.text)")
            let outputs = try #require(try prediction.json()["outputs"]?.array)
            let labels = try #require(try prediction.json()["predictions"]?.array?.compactMap(\.string))
            #expect(outputs.count == rows.count && labels.count == rows.count)
            var correct = 0
            for (index, row) in rows.enumerated() {
                let expected = try Self.forward(row.features, layers: layers, tensors: file, mean: mean, std: std)
                let served = outputs[index].array?.compactMap(\.number) ?? []
                #expect(served.count == 10)
                let largestDifference = zip(served, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(largestDifference <= 1e-5, "row \(index): served \(served), computed \(expected)")
                let best = expected.indices.max { expected[$0] < expected[$1] }!
                #expect(labels[index] == classes[best], "row \(index)")
                if labels[index] == row.label { correct += 1 }
            }
            #expect(Double(correct) / Double(rows.count) >= 0.9, "\(correct) of \(rows.count) sampled rows right")
        }
    }

    /// Every `step`-th row of digits.csv: 64 grey levels and the label.
    static func digitsRows(every step: Int) throws -> [(features: [Double], label: String)] {
        let text = try String(contentsOf: RepositoryFiles.dataset("digits.csv"), encoding: .utf8)
        let lines = text.split(whereSeparator: \.isNewline).dropFirst()
        return try stride(from: 0, to: lines.count, by: step).map { index in
            let cells = lines[lines.startIndex + index].split(separator: ",")
            let features = try cells.dropLast().map { try #require(Double($0)) }
            return (features, String(cells.last!))
        }
    }

    /// Standardize, then each layer: dense `W·x + b` (W is `[units, inputs]`) and its activation; dropout
    /// is the identity at inference; softmax at the end. In Double.
    static func forward(_ input: [Double], layers: [JSONValue], tensors: SafeTensorsFile, mean: [Double], std: [Double]) throws -> [Double] {
        var x = zip(input, zip(mean, std)).map { ($0 - $1.0) / $1.1 }
        for (index, layer) in layers.enumerated() {
            switch layer["type"]?.string {
            case "dense":
                let weight = try #require(tensors.tensor(named: "layers.\(index).weight"))
                let bias = tensors.tensor(named: "layers.\(index).bias")
                let units = weight.shape[0], inputs = weight.shape[1]
                #expect(inputs == x.count)
                x = (0..<units).map { unit in
                    var sum = Double(bias?.values[unit] ?? 0)
                    for k in 0..<inputs { sum += Double(weight.values[unit * inputs + k]) * x[k] }
                    return sum
                }
                x = try activate(x, layer["activation"]?.string ?? "linear")
            case "activation":
                x = try activate(x, layer["name"]?.string ?? "linear")
            case "dropout":
                break
            case let other:
                Issue.record("the test's forward pass does not know layer type \(other ?? "nil")")
            }
        }
        let largest = x.max() ?? 0
        let exponentials = x.map { Foundation.exp($0 - largest) }
        let total = exponentials.reduce(0, +)
        return exponentials.map { $0 / total }
    }

    static func activate(_ x: [Double], _ name: String) throws -> [Double] {
        switch name {
        case "linear": return x
        case "relu": return x.map { max($0, 0) }
        case "tanh": return x.map { Foundation.tanh($0) }
        case "sigmoid": return x.map { 1 / (1 + Foundation.exp(-$0)) }
        default:
            Issue.record("the test's forward pass does not know activation \(name)")
            return x
        }
    }
}
