import Datasets
import Foundation
import NeuralNetwork
import Optimizers
import Tensors
import Testing
@testable import Training

/// The data of a spec's built-in dataset.
func builtinData(of spec: JobSpec) -> TabularDataset {
    guard case .builtin(let kind, let options) = spec.dataset else { preconditionFailure("not a built-in dataset: \(spec.dataset)") }
    return kind.generate(options)
}

/// Trains a spec on its built-in dataset.
func trainBuiltin(_ text: String, observer: (any TrainingObserver)? = nil) throws -> (Trainer, TrainingOutcome) {
    let spec = try JobSpec.parse(json(text))
    return try train(text, on: builtinData(of: spec), observer: observer)
}

/// `shared/datasets/digits.csv`: 1797 8×8 images as 64 features, label 0…9.
func digits() throws -> TabularDataset {
    try CSVParser.parse(contentsOf: SharedFolder.dataset("digits.csv"), target: "label")
}

/// Moons with a small tanh network: a quick, easy problem.
/// `extra` adds top-level members, `training` members of `training` (each starting with a comma).
func moonsSpec(_ extra: String = "", epochs: Int = 30, optimizer: String = #"{"type": "adam", "lr": 0.01}"#,
               training: String = "") -> String {
    """
    {"dataset": {"builtin": "moons", "samples": 1000, "noise": 0.1, "seed": 3},
     "model": {"layers": [{"type": "dense", "units": 16, "activation": "tanh"},
                          {"type": "dense", "units": 16, "activation": "tanh"}, {"type": "dense", "units": 2}]},
     "optimizer": \(optimizer), "training": {"epochs": \(epochs), "batch_size": 32, "seed": 2\(training)}\(extra)}
    """
}

@Suite("Trainer")
struct TrainerTests {
    // MARK: Learning

    @Test func itLearnsTheMoons() throws {
        let (_, outcome) = try trainBuiltin(moonsSpec())
        let last = try #require(outcome.history.last)
        #expect(try #require(last.validationAccuracy) >= 0.97)
        #expect(last.trainLoss < outcome.history[0].trainLoss)
        #expect(!outcome.wasStopped)
    }

    @Test func itLearnsTheSpiralsWithNesterovMomentum() throws {
        // examples/spirals-sgd.json: 3 arms, 2×64 tanh, SGD Nesterov momentum 0.9 lr 0.05, 60 epochs.
        let text = try String(contentsOf: SharedFolder.example("spirals-sgd.json"), encoding: .utf8)
        let spec = try JobSpec.parse(json(text))
        guard case .firstOrder(.sgd(let sgd)) = spec.optimizer else { Issue.record("not sgd"); return }
        #expect(sgd.nesterov && sgd.momentum == 0.9 && sgd.lr == 0.05)
        let (trainer, outcome) = try trainBuiltin(text)
        #expect(trainer.optimizer is SGD)
        let last = try #require(outcome.history.last)
        #expect(outcome.history.count == 60)
        #expect(try #require(last.validationAccuracy) >= 0.9)
    }

    @Test func itLearnsTheDigitsOfTheSharedDatasets() throws {
        // examples/digits-mlp.json (128 relu, dropout 0.1, 64 relu, 10; Adam 1e-3; 40 epochs), on digits.csv.
        let example = json(try String(contentsOf: SharedFolder.example("digits-mlp.json"), encoding: .utf8))
        guard case .object(var object) = example else {
            Issue.record("examples/digits-mlp.json is not an object")
            return
        }
        object["dataset"] = ["id": "ds_digits"]
        object["test"] = ["split": 0.2]
        let spec = try JobSpec.parse(JSONValue.object(object))
        let dataset = try digits()
        #expect(dataset.rows == 1797 && dataset.featureCount == 64 && dataset.classes?.count == 10)
        let (resolved, data) = try prepare(spec, on: dataset)
        #expect(resolved.model.inputShape == [64])
        #expect(data.test?.rows == 359)
        let outcome = try Trainer(spec: resolved, data: data).run()
        let test = try #require(outcome.test)
        #expect(try #require(test.accuracy) >= 0.95)
        #expect(outcome.history.count == 40)
    }

    @Test func aLinearRegressionWithMSEReachesALowLoss() throws {
        let dataset = linearDataset(rows: 1000)
        let (trainer, outcome) = try train("""
        {"dataset": {"id": "ds_linear"}, "model": {"layers": [{"type": "dense", "units": 1}]}, "loss": "mse",
         "optimizer": {"type": "adam", "lr": 0.05}, "training": {"epochs": 40, "batch_size": 32}}
        """, on: dataset)
        let last = try #require(outcome.history.last)
        #expect(try #require(last.validationLoss) < 1e-3)
        #expect(last.trainAccuracy == nil && last.validationAccuracy == nil)
        #expect(outcome.history[0].trainLoss > 100 * last.trainLoss)
        // The model answers raw inputs: y = 3·0.5 − 2·(−0.5) + 0.5·0.2 + 1 = 3.6.
        let prediction = try outcome.model.predict([[0.5, -0.5, 0.2]])
        #expect(abs(prediction.outputs[0][0] - 3.6) < 0.02)
        #expect(trainer.network.parameterCount == 4)
    }

    // MARK: Determinism

    @Test func theSameSpecAndSeedGiveBitIdenticalWeightsAndMetrics() throws {
        // Dropout, shuffling and initialization all draw from the seed.
        let text = """
        {"dataset": {"builtin": "spirals", "samples": 600, "classes": 3, "seed": 4},
         "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2},
                              {"type": "dense", "units": 3}]},
         "optimizer": {"type": "adam", "lr": 0.01}, "test": {"split": 0.1},
         "training": {"epochs": 5, "batch_size": 16, "seed": 9}}
        """
        let (first, firstOutcome) = try trainBuiltin(text)
        let (second, secondOutcome) = try trainBuiltin(text)
        #expect(parameterValues(first.network) == parameterValues(second.network))
        #expect(firstOutcome.history.count == secondOutcome.history.count)
        for (a, b) in zip(firstOutcome.history, secondOutcome.history) {
            #expect(a.epoch == b.epoch)
            #expect(a.trainLoss == b.trainLoss)
            #expect(a.trainAccuracy == b.trainAccuracy)
            #expect(a.validationLoss == b.validationLoss)
            #expect(a.validationAccuracy == b.validationAccuracy)
            #expect(a.gradientNorm == b.gradientNorm)
            #expect(a.learningRate == b.learningRate)
            #expect(a.penalty == b.penalty)
        }
        #expect(firstOutcome.test == secondOutcome.test)
        #expect(firstOutcome.model.safetensors() == secondOutcome.model.safetensors())

        // Another training seed trains another model.
        let (other, _) = try trainBuiltin(text.replacingOccurrences(of: #""seed": 9"#, with: #""seed": 10"#))
        #expect(parameterValues(other.network) != parameterValues(first.network))
    }

    // MARK: Stopping and failing

    @Test func anObserverStopsTrainingBetweenBatches() throws {
        let observer = RecordingObserver(stopAfterBatches: 3)
        let (trainer, outcome) = try trainBuiltin(moonsSpec(epochs: 10), observer: observer)
        #expect(outcome.wasStopped)
        #expect(outcome.history.isEmpty)
        #expect(observer.epochs.isEmpty)
        #expect(observer.batchChecks == 4)
        #expect((trainer.optimizer as? Adam)?.stepCount == 3)

        // Stopped in the third epoch: two finished epochs reported, fewer than planned.
        let batchesPerEpoch = (800 + 31) / 32
        let later = RecordingObserver(stopAfterBatches: 2 * batchesPerEpoch + 3)
        let (laterTrainer, laterOutcome) = try trainBuiltin(moonsSpec(epochs: 10), observer: later)
        #expect(laterOutcome.wasStopped)
        #expect(laterOutcome.history.map(\.epoch) == [1, 2])
        #expect(later.epochs == laterOutcome.history)
        #expect((laterTrainer.optimizer as? Adam)?.stepCount == 2 * batchesPerEpoch + 3)
    }

    @Test func anObserverThatNeverStopsSeesEveryEpoch() throws {
        let observer = RecordingObserver()
        let (_, outcome) = try trainBuiltin(moonsSpec(epochs: 3), observer: observer)
        #expect(!outcome.wasStopped)
        #expect(observer.epochs == outcome.history)
        #expect(observer.batchChecks == 3 * 25)
    }

    /// Trains `text` on `dataset` and returns the divergence it must end with.
    func divergence(_ text: String, on dataset: TabularDataset) throws -> (epoch: Int, loss: Double, message: String)? {
        do {
            _ = try train(text, on: dataset)
            Issue.record("training did not diverge")
        } catch let error as TrainingError {
            guard case .diverged(let epoch, let loss) = error else {
                Issue.record("\(error)")
                return nil
            }
            return (epoch, loss, error.description)
        }
        return nil
    }

    @Test func aHugeLearningRateDivergesNamingTheEpochAndSuggestingASmallerOne() throws {
        // Unstandardized pixels 0…16 through two linear layers: each step multiplies the weights' scale.
        // (ReLU or tanh hidden units would die or saturate and keep the cross-entropy finite.)
        let found = try divergence("""
        {"dataset": {"id": "ds_digits"}, "preprocessing": {"standardize": false},
         "model": {"layers": [{"type": "dense", "units": 32}, {"type": "dense", "units": 10}]},
         "optimizer": {"type": "sgd", "lr": 1000000}, "training": {"epochs": 5}}
        """, on: try digits())
        let (epoch, loss, message) = try #require(found)
        #expect(epoch == 1)
        #expect(!loss.isFinite)
        #expect(message.contains("in epoch 1"))
        #expect(message.contains("try a smaller learning rate (optimizer.lr)"))
    }

    @Test func aRegressionDivergesToo() throws {
        var dataset = linearDataset(rows: 200)
        for i in dataset.features.indices { dataset.features[i] *= 100 }
        let found = try divergence("""
        {"dataset": {"id": "ds_linear"}, "preprocessing": {"standardize": false}, "loss": "mse",
         "model": {"layers": [{"type": "dense", "units": 1}]},
         "optimizer": {"type": "sgd", "lr": 1000000}, "training": {"epochs": 3}}
        """, on: dataset)
        let (epoch, loss, message) = try #require(found)
        #expect(epoch == 1)
        #expect(!loss.isFinite)
        #expect(message.contains("epoch 1"))
    }

    @Test func aSpecWhoseInputShapeIsNotResolvedIsRefused() throws {
        let spec = try JobSpec.parse(json(moonsSpec()))
        let data = PreparedData(spec: spec, dataset: builtinData(of: spec))
        #expect(throws: TrainingError.invalidSpec("model.input_shape is not resolved")) {
            _ = try Trainer(spec: spec, data: data)
        }
    }

    // MARK: Regularization and clipping

    @Test func l2RegularizationShrinksTheWeightsAndReportsItsPenalty() throws {
        let (plain, plainOutcome) = try trainBuiltin(moonsSpec(epochs: 10))
        let (regularized, regularizedOutcome) = try trainBuiltin(moonsSpec(#", "regularization": {"l2": 0.001}"#, epochs: 10))
        let plainNorm = squaredWeightNorm(plain.network), regularizedNorm = squaredWeightNorm(regularized.network)
        #expect(regularizedNorm < 0.9 * plainNorm)
        #expect(plainOutcome.history.allSatisfy { $0.penalty == 0 })
        #expect(regularizedOutcome.history.allSatisfy { $0.penalty > 0 })
        // The penalty is l2·Σw² over weights (not biases), at the end of the epoch.
        let last = try #require(regularizedOutcome.history.last)
        #expect(abs(last.penalty - 0.001 * regularizedNorm) <= 1e-6 * last.penalty)
        #expect(try #require(last.validationAccuracy) >= 0.9)
    }

    @Test func l1RegularizationReportsTheSumOfAbsoluteWeights() throws {
        let (trainer, outcome) = try trainBuiltin(moonsSpec(#", "regularization": {"l1": 0.001}"#, epochs: 3))
        let sumOfAbsolute = trainer.network.parameters.filter(\.isWeight)
            .reduce(0.0) { total, parameter in total + parameter.value.values.reduce(0.0) { $0 + Double(abs($1)) } }
        let penalty = try #require(outcome.history.last?.penalty)
        #expect(abs(penalty - 0.001 * sumOfAbsolute) <= 1e-6 * penalty)
    }

    @Test func clippingByNormScalesTheStepButReportsTheNormBeforeClipping() throws {
        // One full batch, one plain SGD step: the step is lr · the clipped gradient.
        func oneStep(_ clip: String) throws -> (before: [[Float]], after: [[Float]], norm: Double) {
            let text = """
            {"dataset": {"builtin": "moons", "samples": 200, "seed": 3},
             "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 2}]},
             "optimizer": {"type": "sgd", "lr": 0.1}, "training": {"epochs": 1, "batch_size": 1000, "seed": 1\(clip)}}
            """
            let spec = try JobSpec.parse(json(text))
            let (resolved, data) = try prepare(spec, on: builtinData(of: spec))
            let trainer = try Trainer(spec: resolved, data: data)
            let before = parameterValues(trainer.network)
            let outcome = try trainer.run()
            return (before, parameterValues(trainer.network), outcome.history[0].gradientNorm)
        }
        func stepLength(_ run: (before: [[Float]], after: [[Float]], norm: Double)) -> Double {
            zip(run.before, run.after).reduce(0.0) { total, pair in
                total + zip(pair.0, pair.1).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            }.squareRoot()
        }
        let free = try oneStep("")
        let clipped = try oneStep(#", "gradient_clip_norm": 0.01"#)
        #expect(free.before == clipped.before)
        #expect(free.norm > 0.01)
        #expect(clipped.norm == free.norm)  // the norm before clipping
        #expect(abs(stepLength(free) - 0.1 * free.norm) < 1e-4 * free.norm)
        #expect(abs(stepLength(clipped) - 0.1 * 0.01) < 1e-6)
    }

    @Test func trainingWithGradientClippingStillConverges() throws {
        let (_, outcome) = try trainBuiltin(moonsSpec(epochs: 30, optimizer: #"{"type": "sgd", "lr": 0.5, "momentum": 0.9}"#,
                                                      training: #", "gradient_clip_norm": 0.1"#))
        let first = try #require(outcome.history.first), last = try #require(outcome.history.last)
        #expect(first.gradientNorm > 0.1)  // reported before clipping
        #expect(try #require(last.validationAccuracy) >= 0.95)
    }

    @Test func clippingByValueBoundsEveryGradientElement() throws {
        let (_, outcome) = try trainBuiltin(moonsSpec(epochs: 10, optimizer: #"{"type": "sgd", "lr": 0.5, "momentum": 0.9}"#,
                                                      training: #", "gradient_clip_value": 0.05"#))
        // 2·16 + 16 + 16·16 + 16 + 16·2 + 2 = 354 parameters, each gradient within ±0.05: norm ≤ 0.05·√354.
        #expect(outcome.history.allSatisfy { $0.gradientNorm <= 0.05 * Double(354).squareRoot() + 1e-6 })
        #expect(try #require(outcome.history.last?.validationAccuracy) >= 0.9)
    }

    // MARK: Metrics

    @Test func epochMetricsAreNumberedFromOneAndReportTheLearningRate() throws {
        let (_, outcome) = try trainBuiltin(moonsSpec(epochs: 4, optimizer: #"{"type": "sgd", "lr": 0.05, "momentum": 0.9}"#))
        #expect(outcome.history.map(\.epoch) == [1, 2, 3, 4])
        for metrics in outcome.history {
            #expect(Float(metrics.learningRate) == 0.05)  // the optimizer's Float lr, however it is widened
            #expect(metrics.samplesPerSecond > 0)
            #expect(metrics.seconds >= 0)
            #expect(metrics.trainLoss.isFinite && metrics.trainLoss > 0)
            #expect((0...1).contains(try #require(metrics.trainAccuracy)))
            #expect((0...1).contains(try #require(metrics.validationAccuracy)))
            #expect(try #require(metrics.validationLoss) > 0)
            #expect(metrics.gradientNorm > 0)
            #expect(metrics.penalty == 0)
            #expect(metrics.sparsity == 0)
        }
        #expect(outcome.test == nil)  // no test split by default
    }

    @Test func theValidationMetricsAreTheTrainersEvaluation() throws {
        let (trainer, outcome) = try trainBuiltin(moonsSpec(epochs: 2))
        let evaluation = trainer.evaluate(on: try #require(trainer.data.validation))
        #expect(outcome.history.last?.validationLoss == evaluation.loss)
        #expect(outcome.history.last?.validationAccuracy == evaluation.accuracy)
    }

    @Test func balancedClassWeightsFollowTheClassCountsOfTheTrainingSplit() throws {
        let labels: [Int32] = Array(repeating: 0, count: 60) + Array(repeating: 1, count: 30) + Array(repeating: 2, count: 10)
        let train = TabularDataset(
            features: labels.map(Float.init), rows: 100, featureCount: 1, featureNames: ["x"], task: .classification,
            classes: ["a", "b", "c"], classIndices: labels, targetValues: [], targetCount: 3)
        let weights = Trainer.classWeights(for: .crossEntropy(labelSmoothing: 0, classWeights: .balanced), train: train)
        #expect(weights == [Float(100) / 180, Float(100) / 90, Float(100) / 30])
        #expect(Trainer.classWeights(for: .crossEntropy(labelSmoothing: 0, classWeights: .explicit([1, 2, 3])), train: train) == [1, 2, 3])
        #expect(Trainer.classWeights(for: .mse, train: train) == nil)
    }
}
