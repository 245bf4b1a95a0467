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
        /// Each graph output by name: one flat row per sample.
        var outputs: [String: [[Double]]]
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

    /// Checks and runs `model` on `inputs` (flat rows, as `/predict` takes them) with onnxruntime's default
    /// graph optimizations, or none (`optimized: false`).
    static func run(_ model: Data, inputs: [[Double]], optimized: Bool = true) async throws -> Run {
        let python = try await PythonTools.python(with: packages)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("descent-onnx-\(UUID().uuidString).onnx")
        try model.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let request: JSONValue = ["inputs": .array(inputs.map { .array($0.map { JSONValue($0) }) }),
                                  "optimization": .string(optimized ? "all" : "disabled")]
        let script = RepositoryFiles.packageRoot.appendingPathComponent("scripts/onnx_run.py")
        let output = try await PythonTools.runDetached(python, [script.path, file.path], input: Data(request.encodedString().utf8))
        let json = try JSONValue.parse(Data(output.utf8))
        var outputs: [String: [[Double]]] = [:]
        for (name, rows) in json["outputs"]?.object ?? [:] {
            outputs[name] = rows.array?.map { $0.array?.compactMap(\.number) ?? [] } ?? []
        }
        return Run(outputs: outputs,
                   outputNames: json["output_names"]?.array?.compactMap(\.string) ?? [],
                   inputShape: json["input_shape"]?.array?.compactMap(\.int) ?? [],
                   ops: Set(json["ops"]?.array?.compactMap(\.string) ?? []),
                   initializerTypes: (json["initializer_types"]?.object ?? [:]).compactMapValues(\.int),
                   initializers: (json["initializers"]?.object ?? [:]).compactMapValues { entry in
                       entry["type"]?.string.map { Initializer(type: $0, count: entry["count"]?.int ?? 0, zeros: entry["zeros"]?.int ?? 0) }
                   },
                   opset: json["opset"]?.int ?? 0,
                   metadata: (json["metadata"]?.object ?? [:]).compactMapValues(\.string))
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
