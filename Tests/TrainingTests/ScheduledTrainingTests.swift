import Datasets
import Foundation
import NeuralNetwork
import Optimizers
import Testing
@testable import Training

/// Schedules and optimizers as the trainer runs them: the learning rate each epoch reports, and
/// every optimizer type of the spec learning a real problem.
@Suite("Training with schedules and the optimizer menu")
struct ScheduledTrainingTests {
    private func rates(_ outcome: TrainingOutcome) -> [Double] { outcome.history.map(\.learningRate) }

    @Test func aStepScheduleHalvesTheLearningRateEveryTwoEpochs() throws {
        let (_, outcome) = try trainBuiltin(moonsSpec(#", "schedule": {"type": "step", "step_size": 2, "gamma": 0.5}"#,
                                                      epochs: 6, optimizer: #"{"type": "sgd", "lr": 0.1}"#))
        #expect(rates(outcome) == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    }

    @Test func aWarmupRampsTheLearningRateBeforeTheScheduleStarts() throws {
        let (_, outcome) = try trainBuiltin(moonsSpec(
            #", "schedule": {"type": "exponential", "gamma": 0.5, "warmup": {"epochs": 2, "start_factor": 0.25}}"#,
            epochs: 5, optimizer: #"{"type": "sgd", "lr": 0.2}"#))
        // LinearLR from 0.25·lr to lr over 2 steps, then ExponentialLR from its own start.
        let expected = [0.05, 0.125, 0.2, 0.1, 0.05]
        for (rate, want) in zip(rates(outcome), expected) { #expect(abs(rate - want) < 1e-7, "\(rates(outcome))") }
    }

    @Test func aPerStepCosineScheduleEndsTheRunNearItsMinimum() throws {
        let (trainer, outcome) = try trainBuiltin(moonsSpec(#", "schedule": {"type": "cosine", "eta_min": 0.001, "per": "step"}"#,
                                                            epochs: 4, optimizer: #"{"type": "adam", "lr": 0.01}"#))
        let reported = rates(outcome)
        #expect(zip(reported, reported.dropFirst()).allSatisfy { $0 > $1 }, "\(reported)")
        // The last step of the run is the cosine's last before t_max: just above eta_min.
        #expect(reported.last! < 0.0012 && reported.last! > 0.001, "\(reported)")
        #expect(trainer.spec.schedule?.jsonValue["t_max"] == .null)
    }

    @Test func reduceOnPlateauCutsTheRateWhenTheMonitoredLossStopsImproving() throws {
        // A threshold of 90 % means no epoch counts as an improvement after the first (which sets the best);
        // with patience 0 each later epoch halves the rate for the next one, as torch does.
        let (_, outcome) = try trainBuiltin(moonsSpec(
            #", "schedule": {"type": "reduce_on_plateau", "monitor": "train_loss", "factor": 0.5, "patience": 0, "threshold": 0.9}"#,
            epochs: 4, optimizer: #"{"type": "sgd", "lr": 0.08}"#))
        #expect(rates(outcome) == [0.08, 0.08, 0.04, 0.02])
    }

    @Test func aPlateauScheduleOnValidationLossNeedsAValidationSet() throws {
        let spec = try JobSpec.parse(json(moonsSpec(#", "validation": {"split": 0}, "schedule": {"type": "reduce_on_plateau"}"#)))
        #expect(throws: SpecProblems.self) { try spec.resolved(for: DatasetSummary(builtinData(of: spec))) }
    }

    @Test func fullBatchGradientDescentTakesOneStepPerEpochOverTheWholeTrainingSet() throws {
        let (trainer, outcome) = try trainBuiltin(moonsSpec(epochs: 200, optimizer: #"{"type": "gd", "lr": 0.5, "momentum": 0.9}"#))
        #expect(trainer.batchSize == trainer.data.train.rows)
        #expect(trainer.optimizer is SGD)
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.95)
    }

    @Test(arguments: [
        #"{"type": "adamw", "lr": 0.01, "weight_decay": 0.01}"#,
        #"{"type": "nadam", "lr": 0.01}"#,
        #"{"type": "adagrad", "lr": 0.1}"#,
        #"{"type": "rmsprop", "lr": 0.005, "centered": true, "momentum": 0.5}"#,
        #"{"type": "adadelta", "lr": 1.0}"#,
        #"{"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}"#,
    ])
    func everyFirstOrderOptimizerLearnsTheMoons(optimizer: String) throws {
        let (_, outcome) = try trainBuiltin(moonsSpec(epochs: 30, optimizer: optimizer))
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.95, "\(optimizer)")
    }

    @Test func theStoredSpecSpellsOutTheOptimizerAndScheduleAndParsesBack() throws {
        let spec = try JobSpec.parse(json(moonsSpec(#", "schedule": {"type": "one_cycle", "max_lr": 0.1, "per": "step"}"#,
                                                    optimizer: #"{"type": "rmsprop"}"#)))
        let again = try JobSpec.parse(spec.jsonValue)
        #expect(again.optimizer == spec.optimizer && again.schedule == spec.schedule)
        #expect(spec.jsonValue["optimizer"]?["alpha"] == 0.99)
        #expect(spec.jsonValue["schedule"]?["total_steps"] == .null)
    }
}

/// The second-order methods as jobs: a full-batch step per epoch through the loss closure.
@Suite("Training with second-order methods")
struct SecondOrderTrainingTests {
    /// Multinomial logistic regression on iris (one dense layer), 30 epochs.
    private func iris(optimizer: String, epochs: Int = 30) throws -> TrainingOutcome {
        let dataset = try CSVParser.parse(contentsOf: SharedFolder.dataset("iris.csv"), target: "species")
        let text = """
        {"dataset": {"id": "ds_iris"}, "model": {"layers": [{"type": "dense", "units": 3}]},
         "optimizer": \(optimizer), "training": {"epochs": \(epochs), "batch_size": 16, "seed": 1}}
        """
        return try train(text, on: dataset).1
    }

    @Test(arguments: [#"{"type": "lbfgs", "line_search_fn": "strong_wolfe"}"#, #"{"type": "newton"}"#, #"{"type": "bfgs"}"#])
    func aSecondOrderMethodReachesALowerTrainingLossThanSGDInFewerEpochs(optimizer: String) throws {
        let secondOrder = try iris(optimizer: optimizer, epochs: 10)
        let sgd = try iris(optimizer: #"{"type": "sgd", "lr": 0.1}"#, epochs: 30)
        let reached = try #require(secondOrder.history.last?.trainLoss)
        let sgdReached = try #require(sgd.history.last?.trainLoss)
        #expect(reached < sgdReached, "\(optimizer): \(reached) after 10 epochs vs sgd's \(sgdReached) after 30")
        #expect(try #require(secondOrder.history.last?.validationAccuracy) >= 0.9)
    }

    @Test func lbfgsTrainsASmallNetworkOnDigits() throws {
        var dataset = try digits()
        dataset = dataset.subset(Array(0..<600))
        let text = """
        {"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "dense", "units": 32, "activation": "tanh"}, {"type": "dense", "units": 10}]},
         "optimizer": {"type": "lbfgs", "line_search_fn": "strong_wolfe", "history_size": 20}, "training": {"epochs": 5, "seed": 1}}
        """
        let (_, outcome) = try train(text, on: dataset)
        #expect(outcome.history.count == 5)
        #expect(zip(outcome.history, outcome.history.dropFirst()).allSatisfy { $0.trainLoss >= $1.trainLoss })
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.85)
    }

    @Test func aModelAboveTheParameterLimitIsRefusedNamingTheLimit() throws {
        let dataset = try digits()
        let spec = try JobSpec.parse(json("""
        {"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "dense", "units": 128, "activation": "relu"}, {"type": "dense", "units": 10}]},
         "optimizer": {"type": "newton"}}
        """))
        do {
            _ = try spec.resolved(for: DatasetSummary(dataset))
            Issue.record("accepted")
        } catch {
            let issue = try #require(error.issues.first)
            #expect(issue.path == "optimizer.type")
            #expect(issue.message.contains("5000") && issue.message.contains("lbfgs"))
        }
    }
}

@Suite("Second-order methods on digits")
struct SecondOrderDigitsTests {
    /// Multinomial logistic regression on digits (650 parameters, within Newton's limit).
    private func logisticRegression(optimizer: String, epochs: Int) throws -> TrainingOutcome {
        let text = """
        {"dataset": {"id": "ds_digits"}, "model": {"layers": [{"type": "dense", "units": 10}]},
         "optimizer": \(optimizer), "training": {"epochs": \(epochs), "batch_size": 32, "seed": 1}}
        """
        return try train(text, on: digits()).1
    }

    @Test(arguments: [#"{"type": "lbfgs", "line_search_fn": "strong_wolfe"}"#, #"{"type": "newton", "max_iter": 2}"#])
    func aSecondOrderMethodFitsLogisticRegressionOnDigitsFasterThanSGD(optimizer: String) throws {
        let secondOrder = try logisticRegression(optimizer: optimizer, epochs: 5)
        let sgd = try logisticRegression(optimizer: #"{"type": "sgd", "lr": 0.05}"#, epochs: 20)
        let reached = try #require(secondOrder.history.last?.trainLoss)
        let sgdReached = try #require(sgd.history.last?.trainLoss)
        print("[figures] digits logistic regression: \(optimizer) train loss \(reached) after 5 epochs; sgd \(sgdReached) after 20")
        #expect(reached < sgdReached)
        #expect(try #require(secondOrder.history.last?.validationAccuracy) >= 0.93)
    }
}
