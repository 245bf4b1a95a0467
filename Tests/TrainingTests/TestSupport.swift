import Datasets
import Foundation
import NeuralNetwork
import Tensors
@testable import Training

/// The `shared/` folder beside the package (datasets, reference, examples of API.md):
/// `DESCENT_SHARED_DIR` when set, otherwise `../shared` from the package root.
enum SharedFolder {
    static var directory: URL {
        if let path = ProcessInfo.processInfo.environment["DESCENT_SHARED_DIR"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        // This file is <package>/Tests/TrainingTests/TestSupport.swift (through symlinks in a scratch package).
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared", isDirectory: true)
    }

    /// The package root: three levels above this file, following symlinks.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func dataset(_ name: String) -> URL {
        directory.appendingPathComponent("datasets", isDirectory: true).appendingPathComponent(name)
    }

    /// A file of the package's `examples/` folder.
    static func example(_ name: String) -> URL {
        packageRoot.appendingPathComponent("examples", isDirectory: true).appendingPathComponent(name)
    }
}

/// Parses JSON text into a value (the test's own literal, so a failure is a bug in the test).
func json(_ text: String) -> JSONValue {
    do { return try JSONValue.parse(Data(text.utf8)) } catch { preconditionFailure("bad JSON in test: \(error)\n\(text)") }
}

/// The problems `JobSpec.parse` reports for `text`, or [] when it parses.
func problems(_ text: String) -> [SpecIssue] {
    do {
        _ = try JobSpec.parse(json(text))
        return []
    } catch {
        return error.issues
    }
}

/// A spec resolved for `dataset`, its data prepared: what a worker does before training.
func prepare(_ spec: JobSpec, on dataset: TabularDataset) throws -> (JobSpec, PreparedData) {
    let resolved = try spec.resolved(for: DatasetSummary(dataset))
    return (resolved, PreparedData(spec: resolved, dataset: dataset))
}

/// Parses, resolves and trains `specText` on `dataset`; the dataset of the spec is ignored.
func train(_ specText: String, on dataset: TabularDataset, observer: (any TrainingObserver)? = nil) throws -> (Trainer, TrainingOutcome) {
    let (spec, data) = try prepare(try JobSpec.parse(json(specText)), on: dataset)
    let trainer = try Trainer(spec: spec, data: data)
    return (trainer, try trainer.run(observer: observer))
}

/// The values of every parameter of a network, in saved-model order.
func parameterValues(_ network: Network) -> [[Float]] {
    network.parameters.map(\.value.array)
}

/// Σ w² over the weights (not biases) of a network.
func squaredWeightNorm(_ network: Network) -> Double {
    network.parameters.filter(\.isWeight).reduce(0) { total, parameter in
        total + parameter.value.values.reduce(0) { $0 + Double($1) * Double($1) }
    }
}

/// A regression dataset y = 3·x0 − 2·x1 + 0.5·x2 + 1 (plus small noise), x uniform in [-1, 1].
func linearDataset(rows: Int, noise: Float = 0.01, seed: UInt64 = 3) -> TabularDataset {
    var random = SeededGenerator(seed: seed, purpose: "test.linear")
    var features: [Float] = []
    var targets: [Float] = []
    for _ in 0..<rows {
        let x = (0..<3).map { _ in random.uniform(-1, 1) }
        features += x
        targets.append(3 * x[0] - 2 * x[1] + 0.5 * x[2] + 1 + noise * random.normal())
    }
    return TabularDataset(
        features: features, rows: rows, featureCount: 3, featureNames: ["x0", "x1", "x2"],
        task: .regression, classes: nil, classIndices: [], targetValues: targets, targetCount: 1)
}

/// Records epochs and stops after a number of batches.
final class RecordingObserver: TrainingObserver {
    var stopAfterBatches: Int?
    private(set) var batchChecks = 0
    private(set) var epochs: [EpochMetrics] = []

    init(stopAfterBatches: Int? = nil) { self.stopAfterBatches = stopAfterBatches }

    func shouldStop() -> Bool {
        batchChecks += 1
        if let limit = stopAfterBatches { return batchChecks > limit }
        return false
    }

    func epochDidFinish(_ metrics: EpochMetrics) { epochs.append(metrics) }
}
