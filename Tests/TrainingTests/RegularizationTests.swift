import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// Regularization and generalization, each with an effect that shows in the metrics.
@Suite("Regularization")
struct RegularizationTests {
    private let mlp = #"{"layers": [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 10}]}"#

    private func digitsJob(_ extra: String, model: String? = nil, epochs: Int = 30,
                           optimizer: String = #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#) -> String {
        """
        {"dataset": {"id": "ds_digits"}, "test": {"split": 0.2}, "model": \(model ?? mlp), "optimizer": \(optimizer),
         "training": {"epochs": \(epochs), "batch_size": 32, "seed": 2}\(extra)}
        """
    }

    @Test func l1AppliedAsAProximalStepMakesMostFirstLayerWeightsExactlyZero() throws {
        let (trainer, outcome) = try train(digitsJob(#", "regularization": {"l1": 0.005}"#), on: digits())
        let first = trainer.network.layers[0].parameters[0].value.array
        let zeros = Double(first.filter { $0 == 0 }.count) / Double(first.count)
        let accuracy = try #require(outcome.test?.accuracy)
        print("[figures] L1 0.005 on digits: \(Int(zeros * 100)) % of first-layer weights exactly 0, test accuracy \(accuracy)")
        #expect(zeros >= 0.5)
        #expect(accuracy >= 0.93)
        #expect(try #require(outcome.history.last).sparsity > 0.4)
        #expect(try #require(outcome.history.last).penalty > 0)
    }

    @Test func elasticNetCombinesBothPenaltiesAsScikitLearnDefinesThem() throws {
        let (trainer, outcome) = try train(digitsJob(#", "regularization": {"elastic_net": {"alpha": 0.002, "l1_ratio": 0.5}}"#, epochs: 5), on: digits())
        let weights = trainer.network.parameters.filter(\.isWeight).flatMap { $0.value.array.map(Double.init) }
        let expected = 0.002 * (0.5 * weights.reduce(0) { $0 + abs($1) } + 0.25 * weights.reduce(0) { $0 + $1 * $1 })
        #expect(abs(try #require(outcome.history.last).penalty - expected) < 1e-6 * max(1, expected))
        #expect(try #require(outcome.history.last).sparsity > 0)
    }

    @Test func maxNormCapsEveryUnitsIncomingWeights() throws {
        let (trainer, _) = try train(digitsJob(#", "regularization": {"max_norm": 0.5}"#, epochs: 5), on: digits())
        for layer in trainer.network.layers {
            guard let weight = layer.parameters.first, weight.isWeight else { continue }
            let fanIn = weight.count / weight.shape[0]
            for unit in 0..<weight.shape[0] {
                let norm = (0..<fanIn).reduce(0.0) { $0 + Double(weight.value[unit * fanIn + $1] * weight.value[unit * fanIn + $1]) }.squareRoot()
                #expect(norm <= 0.5 + 1e-5)
            }
        }
    }

    @Test func earlyStoppingEndsAnOverfittingRunAndRestoresTheBestEpochsWeights() throws {
        // A wide network on 10 % of digits overfits quickly: validation loss turns up.
        let all = try digits()
        let small = all.subset(Array(stride(from: 0, to: all.rows, by: 10)))
        let text = digitsJob(#", "validation": {"split": 0.3}, "early_stopping": {"monitor": "val_loss", "patience": 4, "restore_best_weights": true}"#,
                             model: #"{"layers": [{"type": "dense", "units": 512, "activation": "relu"}, {"type": "dense", "units": 512, "activation": "relu"}, {"type": "dense", "units": 10}]}"#,
                             epochs: 200, optimizer: #"{"type": "adam", "lr": 0.003}"#)
        let (trainer, outcome) = try train(text, on: small)
        let best = try #require(outcome.bestEpoch)
        #expect(outcome.stoppedEarly)
        #expect(outcome.history.count < 200)
        #expect(outcome.history.count == best + 4)
        let bestLoss = try #require(outcome.history[best - 1].validationLoss)
        #expect(outcome.history.compactMap(\.validationLoss).min() == bestLoss)
        let restored = trainer.evaluate(on: try #require(trainer.data.validation)).loss
        print("[figures] early stopping: stopped after epoch \(outcome.history.count) of 200, best epoch \(best) (val loss \(bestLoss)); restored model's val loss \(restored)")
        #expect(abs(restored - bestLoss) < 1e-6)
    }

    @Test(arguments: [#", "loss": {"type": "cross_entropy", "class_weights": "balanced"}"#, #", "sampling": "balanced""#])
    func imbalanceRemediesRaiseTheMinorityClassRecall(remedy: String) throws {
        // Class 3 cut to 5 % of its rows in training; validated on every row not trained on.
        let all = try digits()
        let three = Int32(all.classes!.firstIndex(of: "3")!)
        var trainRows: [Int] = [], validationRows: [Int] = []
        var kept = 0
        for row in 0..<all.rows {
            let isThree = all.classIndices[row] == three
            if row % 2 == 0, !isThree || kept < 9 { trainRows.append(row); if isThree { kept += 1 } } else { validationRows.append(row) }
        }
        let train = all.subset(trainRows), validation = all.subset(validationRows)
        func recallOfThree(_ extra: String) throws -> Double {
            let text = """
            {"dataset": {"id": "ds_digits"}, "validation": {"split": 0}, "model": {"layers": [{"type": "dense", "units": 10}]},
             "optimizer": {"type": "sgd", "lr": 0.01},
             "training": {"epochs": 4, "batch_size": 32, "seed": 2\(extra.contains("sampling") ? extra : "")}\(extra.contains("sampling") ? "" : extra)}
            """
            let (spec, _) = try prepare(try JobSpec.parse(json(text)), on: train)
            let data = PreparedData(spec: spec, dataset: train, validationDataset: validation)
            let outcome = try Trainer(spec: spec, data: data).run()
            return try #require(outcome.history.last?.validationClassRecall?[Int(three)] ?? nil)
        }
        let plain = try recallOfThree("")
        let remedied = try recallOfThree(remedy)
        print("[figures] recall of the minority class 3 (5 % of its rows): plain \(plain), with \(remedy.contains("sampling") ? "balanced sampling" : "balanced class weights") \(remedied)")
        #expect(remedied > plain)
    }

    @Test func validationMetricsIncludePerClassRecallAndMacroF1() throws {
        let (_, outcome) = try train(digitsJob("", epochs: 3), on: digits())
        let last = try #require(outcome.history.last)
        let recall = try #require(last.validationClassRecall)
        #expect(recall.count == 10)
        #expect(recall.allSatisfy { ($0 ?? 0) >= 0 && ($0 ?? 0) <= 1 })
        let f1 = try #require(last.validationMacroF1)
        #expect(f1 > 0.8 && f1 <= 1)
    }

    @Test func invalidRegularizationAndEarlyStoppingValuesAreNamed() throws {
        let cases: [(String, String)] = [
            (#", "regularization": {"elastic_net": {"alpha": 0.1, "l1_ratio": 1.5}}"#, "regularization.elastic_net.l1_ratio"),
            (#", "regularization": {"max_norm": 0}"#, "regularization.max_norm"),
            (#", "early_stopping": {"patience": -1}"#, "early_stopping.patience"),
            (#", "early_stopping": {"monitor": "val_f1"}"#, "early_stopping.monitor"),
        ]
        for (extra, path) in cases {
            #expect(problems(digitsJob(extra)).map(\.path) == [path], "\(extra)")
        }
        let sampling = #"{"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "dense", "units": 10}]}, "training": {"sampling": "stratified"}}"#
        #expect(problems(sampling).map(\.path) == ["training.sampling"])
    }
}
