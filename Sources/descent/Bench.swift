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
        abstract: "Measure training throughput (samples/s) on a benchmark workload: mlp (cnn and lstm need layers not supported yet).")

    @Argument(help: "mlp") var workload: String
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Timed epochs after one warm-up epoch.") var epochs = 1

    func run() async throws {
        guard workload == "mlp" else {
            let reason = ["cnn": "conv2d and max_pool2d", "lstm": "lstm"][workload]
            throw ValidationError(reason.map { "workload \(workload) needs \($0) layers, which are not supported yet" }
                                  ?? "unknown workload \(workload); one of: mlp")
        }
        BLAS.setThreadCount(threads ?? ProcessInfo.processInfo.activeProcessorCount)
        // 60 000 × 784 standard-normal features, 10 uniform classes: the anchor's data, from our generator.
        let rows = 60_000, features = 784
        var generator = SeededGenerator(seed: 0, purpose: "bench")
        var values = [Float](repeating: 0, count: rows * features)
        for i in values.indices { values[i] = generator.normal() }
        let labels = (0..<rows).map { _ in Int32(generator.next() % 10) }
        let dataset = TabularDataset(
            features: values, rows: rows, featureCount: features, featureNames: (0..<features).map { "x\($0)" },
            task: .classification, classes: (0..<10).map(String.init), classIndices: labels, targetValues: [], targetCount: 10)
        let specJSON: JSONValue = [
            "dataset": ["id": "bench"], "validation": ["split": 0], "preprocessing": ["standardize": false],
            "model": ["layers": [["type": "dense", "units": 512, "activation": "relu"],
                                 ["type": "dense", "units": 256, "activation": "relu"], ["type": "dense", "units": 10]]],
            "optimizer": ["type": "sgd", "lr": 0.01, "momentum": 0.9],
            "training": ["epochs": JSONValue(1 + epochs), "batch_size": 128, "seed": 0],
        ]
        let spec = try JobSpec.parse(specJSON).resolved(for: DatasetSummary(dataset))
        let trainer = try Trainer(spec: spec, data: PreparedData(spec: spec, dataset: dataset))
        let outcome = try trainer.run()
        let timed = outcome.history.dropFirst()  // the first epoch warms up buffers and caches
        let samples = timed.reduce(0.0) { $0 + $1.samplesPerSecond * $1.seconds }
        let seconds = timed.reduce(0.0) { $0 + $1.seconds }
        let result: JSONValue = [
            "workload": "mlp-784-512-256-10-b128", "samples_per_s": JSONValue((samples / seconds * 10).rounded() / 10),
            "seconds": JSONValue((seconds * 1000).rounded() / 1000), "final_loss": JSONValue(outcome.history.last?.trainLoss ?? .nan),
            "threads": JSONValue(BLAS.threadCount),
        ]
        print(result.encodedString())
    }
}
