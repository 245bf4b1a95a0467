import ArgumentParser
import Datasets
import Foundation
import NeuralNetwork
import Tensors
import Training

/// `descent bench WORKLOAD`: training throughput of the real trainer on the workloads of
/// shared/bench/WORKLOADS.md, to compare with `torch_anchor.py` in the same session.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput (samples/s) on a benchmark workload of shared/bench/WORKLOADS.md: mlp, cnn or lstm.")

    @Argument(help: "mlp, cnn or lstm") var workload: String
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Timed epochs after one warm-up epoch.") var epochs = 1

    /// The workloads of shared/bench/WORKLOADS.md: name, rows, sample shape, layers, batch.
    struct Workload {
        let label: String
        let rows: Int
        let sampleShape: [Int]
        let layers: JSONValue
        let batchSize: Int
    }

    static let workloads: [String: Workload] = [
        "mlp": Workload(label: "mlp-784-512-256-10-b128", rows: 60_000, sampleShape: [784], layers: [
            ["type": "dense", "units": 512, "activation": "relu"], ["type": "dense", "units": 256, "activation": "relu"],
            ["type": "dense", "units": 10]], batchSize: 128),
        "cnn": Workload(label: "cnn-c32-c64-fc128-28x28-b64", rows: 10_000, sampleShape: [1, 28, 28], layers: [
            ["type": "conv2d", "filters": 32, "kernel": 3, "padding": "same", "activation": "relu"], ["type": "max_pool2d", "kernel": 2],
            ["type": "conv2d", "filters": 64, "kernel": 3, "padding": "same", "activation": "relu"], ["type": "max_pool2d", "kernel": 2],
            ["type": "flatten"], ["type": "dense", "units": 128, "activation": "relu"], ["type": "dense", "units": 10]], batchSize: 64),
        "lstm": Workload(label: "lstm-in16-h128-seq32-b64", rows: 8_000, sampleShape: [32, 16], layers: [
            ["type": "lstm", "hidden_size": 128], ["type": "dense", "units": 10]], batchSize: 64),
    ]

    func run() async throws {
        guard let workload = Self.workloads[workload] else {
            throw ValidationError("unknown workload \(workload); one of: mlp, cnn, lstm")
        }
        BLAS.setThreadCount(threads ?? ProcessInfo.processInfo.activeProcessorCount)
        // Standard-normal features and uniform labels over 10 classes, from our seeded generator, like the anchor's.
        let features = workload.sampleShape.reduce(1, *)
        var generator = SeededGenerator(seed: 0, purpose: "bench")
        var values = [Float](repeating: 0, count: workload.rows * features)
        for i in values.indices { values[i] = generator.normal() }
        let labels = (0..<workload.rows).map { _ in Int32(generator.next() % 10) }
        let dataset = TabularDataset(
            features: values, rows: workload.rows, featureCount: features, featureNames: (0..<features).map { "x\($0)" },
            sampleShape: workload.sampleShape, task: .classification, classes: (0..<10).map(String.init), classIndices: labels,
            targetValues: [], targetCount: 10)
        let specJSON: JSONValue = [
            "dataset": ["id": "bench"], "validation": ["split": 0], "preprocessing": ["standardize": false],
            "model": ["input_shape": JSONValue(workload.sampleShape), "layers": workload.layers],
            "optimizer": ["type": "sgd", "lr": 0.01, "momentum": 0.9],
            "training": ["epochs": JSONValue(1 + epochs), "batch_size": JSONValue(workload.batchSize), "seed": 0],
        ]
        let spec = try JobSpec.parse(specJSON).resolved(for: DatasetSummary(dataset))
        let trainer = try Trainer(spec: spec, data: PreparedData(spec: spec, dataset: dataset))
        let outcome = try trainer.run()
        let timed = outcome.history.dropFirst()  // the first epoch warms up buffers and caches
        let samples = timed.reduce(0.0) { $0 + $1.samplesPerSecond * $1.seconds }
        let seconds = timed.reduce(0.0) { $0 + $1.seconds }
        let result: JSONValue = [
            "workload": JSONValue(workload.label), "samples_per_s": JSONValue((samples / seconds * 10).rounded() / 10),
            "seconds": JSONValue((seconds * 1000).rounded() / 1000), "final_loss": JSONValue(outcome.history.last?.trainLoss ?? .nan),
            "threads": JSONValue(BLAS.threadCount),
        ]
        print(result.encodedString())
    }
}
