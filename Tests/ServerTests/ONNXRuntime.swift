import Foundation
import NeuralNetwork
import Testing

/// Runs an exported ONNX file through `onnx.checker.check_model(full_check=True)` and onnxruntime, with
/// `scripts/onnx_run.py` in the PyPI tools environment (`PythonTools`), for the ONNX export tests.
enum ONNXRuntime {
    /// Versions that install as wheels on Python 3.11 (x86-64 and arm64 Linux).
    static let packages = ["onnx==1.23.2", "onnxruntime==1.32.0"]

    struct Initializer {
        var type: String
        var count: Int
        var zeros: Int
    }

    struct Run {
        /// Each graph output by name, one flat row per sample, with onnxruntime's default graph optimizations.
        var outputs: [String: [[Double]]]
        /// The same with graph optimizations off.
        var unoptimizedOutputs: [String: [[Double]]]
        var outputNames: [String]
        var inputShape: [Int]
        var ops: Set<String>
        /// Initializer element types (`FLOAT`, `INT8`, `UINT8`, `INT64`) and how many of each.
        var initializerTypes: [String: Int]
        /// Each initializer by name: its element type, how many values it holds and how many of them are 0.
        var initializers: [String: Initializer]
        var opset: Int
        var metadata: [String: String]
    }

    /// Checks and runs `model` on `inputs` (flat rows, as `/predict` takes them).
    static func run(_ model: Data, inputs: [[Double]]) async throws -> Run {
        try await run([(model, inputs)])[0]
    }

    /// Checks and runs several models in one Python process (importing onnxruntime costs a CPU-second; the
    /// suite runs on two cores).
    static func run(_ models: [(model: Data, inputs: [[Double]])]) async throws -> [Run] {
        let python = try await PythonTools.python(with: packages)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-onnx-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var runs: [JSONValue] = []
        for (index, (model, inputs)) in models.enumerated() {
            let file = folder.appendingPathComponent("\(index).onnx")
            try model.write(to: file)
            runs.append(["model": .string(file.path), "inputs": .array(inputs.map { .array($0.map { JSONValue($0) }) })])
        }
        let request: JSONValue = ["runs": .array(runs)]
        let script = RepositoryFiles.packageRoot.appendingPathComponent("scripts/onnx_run.py")
        let output = try await PythonTools.runDetached(python, [script.path, "--batch"], input: Data(request.encodedString().utf8))
        let json = try JSONValue.parse(Data(output.utf8))
        func tables(_ value: JSONValue?) -> [String: [[Double]]] {
            (value?.object ?? [:]).mapValues { rows in rows.array?.map { $0.array?.compactMap(\.number) ?? [] } ?? [] }
        }
        return (json["runs"]?.array ?? []).map { run in
            Run(outputs: tables(run["outputs"]),
                unoptimizedOutputs: tables(run["unoptimized_outputs"]),
                outputNames: run["output_names"]?.array?.compactMap(\.string) ?? [],
                inputShape: run["input_shape"]?.array?.compactMap(\.int) ?? [],
                ops: Set(run["ops"]?.array?.compactMap(\.string) ?? []),
                initializerTypes: (run["initializer_types"]?.object ?? [:]).compactMapValues(\.int),
                initializers: (run["initializers"]?.object ?? [:]).compactMapValues { entry in
                    entry["type"]?.string.map { Initializer(type: $0, count: entry["count"]?.int ?? 0, zeros: entry["zeros"]?.int ?? 0) }
                },
                opset: run["opset"]?.int ?? 0,
                metadata: (run["metadata"]?.object ?? [:]).compactMapValues(\.string))
        }
    }

    /// The largest |a − b| over two tables of the same shape; infinity when the shapes differ.
    static func maxDifference(_ a: [[Double]], _ b: [[Double]]) -> Double {
        guard a.count == b.count, zip(a, b).allSatisfy({ $0.count == $1.count }), !a.isEmpty else { return .infinity }
        var largest = 0.0
        for (rowA, rowB) in zip(a, b) {
            for (x, y) in zip(rowA, rowB) {
                guard x.isFinite, y.isFinite else { return .infinity }
                largest = max(largest, abs(x - y))
            }
        }
        return largest
    }

    static func maxDifference(_ a: [[Float]], _ b: [[Double]]) -> Double {
        maxDifference(a.map { $0.map(Double.init) }, b)
    }
}
