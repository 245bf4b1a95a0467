import Datasets
import Foundation
import NeuralNetwork
import Optimizers
import Testing
@testable import Training

/// The job spec of API.md § Jobs, with a real dataset id in place of `ds_…`.
let apiExampleSpec = """
{
  "name": "digits-mlp",
  "task": "supervised",
  "dataset": {"id": "ds_8f2c41"},
  "validation": {"split": 0.2},
  "test": {"split": 0.0},
  "preprocessing": {"standardize": true},
  "model": {
    "input_shape": [64],
    "layers": [
      {"type": "dense", "units": 128, "activation": "relu"},
      {"type": "dropout", "rate": 0.2},
      {"type": "dense", "units": 10}
    ]
  },
  "loss": "cross_entropy",
  "optimizer": {"type": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0},
  "schedule": null,
  "training": {"epochs": 20, "batch_size": 32, "shuffle": true, "seed": 0, "gradient_clip_norm": null,
               "gradient_clip_value": null, "sampling": "uniform"},
  "regularization": {"l1": 0, "l2": 0, "max_norm": null},
  "early_stopping": null,
  "augmentation": [],
  "compression": [],
  "distillation": null,
  "init": null,
  "distributed": null,
  "priority": 0,
  "max_attempts": 3,
  "notify": null
}
"""

/// A valid spec with `extra` members added at the top level (`extra` starts with a comma or is empty).
func minimalSpec(_ extra: String = "", dataset: String = #"{"id": "ds_x"}"#) -> String {
    #"{"dataset": "# + dataset + #", "model": {"layers": [{"type": "dense", "units": 3}]}"# + extra + "}"
}

/// Every field of two specs is the same (JobSpec itself is not Equatable).
func expectSameSpec(_ a: JobSpec, _ b: JobSpec, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.name == b.name, sourceLocation: sourceLocation)
    #expect(a.dataset == b.dataset, sourceLocation: sourceLocation)
    #expect(a.validation == b.validation, sourceLocation: sourceLocation)
    #expect(a.test == b.test, sourceLocation: sourceLocation)
    #expect(a.standardize == b.standardize, sourceLocation: sourceLocation)
    #expect(a.model == b.model, sourceLocation: sourceLocation)
    #expect(a.loss == b.loss, sourceLocation: sourceLocation)
    #expect(a.optimizer == b.optimizer, sourceLocation: sourceLocation)
    #expect(a.training == b.training, sourceLocation: sourceLocation)
    #expect(a.regularization == b.regularization, sourceLocation: sourceLocation)
    #expect(a.priority == b.priority, sourceLocation: sourceLocation)
    #expect(a.maxAttempts == b.maxAttempts, sourceLocation: sourceLocation)
    #expect(a.distributed == b.distributed, sourceLocation: sourceLocation)
}

@Suite("JobSpec.parse")
struct JobSpecTests {
    // MARK: Valid specs

    @Test func theExampleSpecOfTheAPIParses() throws {
        let spec = try JobSpec.parse(json(apiExampleSpec))
        #expect(spec.name == "digits-mlp")
        #expect(spec.dataset == .uploaded(id: "ds_8f2c41"))
        #expect(spec.validation == .split(0.2))
        #expect(spec.test == .split(0))
        #expect(spec.standardize)
        #expect(spec.model == ModelSpec(inputShape: [64], layers: [
            .dense(units: 128, activation: .relu, bias: true), .dropout(rate: 0.2), .dense(units: 10, activation: .linear, bias: true),
        ]))
        #expect(spec.loss == .crossEntropy(labelSmoothing: 0, classWeights: nil))
        #expect(spec.optimizer == .firstOrder(.adam(AdamHyperparameters(lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0))))
        #expect(spec.training == TrainingOptions())
        #expect(spec.regularization == Regularization())
        #expect(spec.priority == 0)
        #expect(spec.maxAttempts == 3)
    }

    @Test func theJSONOfAParsedSpecParsesBackToTheSameSpec() throws {
        let specs = [
            apiExampleSpec,
            minimalSpec(),
            """
            {"name": "spirals", "dataset": {"builtin": "spirals", "samples": 1500, "classes": 3, "noise": 0.1, "seed": 7},
             "validation": {"dataset": "ds_val"}, "test": {"split": 0.1}, "preprocessing": {"standardize": false},
             "model": {"layers": [{"type": "dense", "units": 64, "activation": "tanh", "bias": false},
                                  {"type": "activation", "name": "relu"}, {"type": "dense", "units": 3}]},
             "loss": {"type": "cross_entropy", "label_smoothing": 0.1, "class_weights": [1, 2, 0.5]},
             "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.0001},
             "training": {"epochs": 7, "batch_size": 16, "shuffle": false, "seed": 42, "gradient_clip_norm": 1.5,
                          "gradient_clip_value": 0.25},
             "regularization": {"l1": 0.001, "l2": 0.01}, "priority": -5, "max_attempts": 1}
            """,
            minimalSpec(#", "loss": {"type": "huber", "delta": 2}"#, dataset: #"{"name": "digits"}"#),
            minimalSpec(#", "loss": "mse", "optimizer": {"type": "adam", "amsgrad": true, "betas": [0.5, 0.99]}"#),
            minimalSpec(#", "loss": {"type": "cross_entropy", "class_weights": "balanced"}"#),
            minimalSpec(#", "validation": {"split": 0}, "loss": "bce_with_logits""#, dataset: #"{"builtin": "moons", "samples": 500}"#),
        ]
        for text in specs {
            let spec = try JobSpec.parse(json(text))
            let reparsed = try JobSpec.parse(spec.jsonValue)
            expectSameSpec(spec, reparsed)
            #expect(reparsed.jsonValue == spec.jsonValue)
            // Through text too, as the store keeps it.
            let fromText = try JobSpec.parse(Data(spec.jsonValue.encodedString().utf8))
            expectSameSpec(spec, fromText)
        }
    }

    @Test func aMinimalSpecGetsEveryDefaultOfTheAPI() throws {
        let spec = try JobSpec.parse(json(minimalSpec()))
        #expect(spec.name == nil)
        #expect(spec.dataset == .uploaded(id: "ds_x"))
        #expect(spec.validation == .split(0.2))
        #expect(spec.test == .split(0))
        #expect(spec.standardize)
        #expect(spec.model.inputShape == nil)
        #expect(spec.model.layers == [.dense(units: 3, activation: .linear, bias: true)])
        #expect(spec.loss == .crossEntropy(labelSmoothing: 0, classWeights: nil))
        guard case .firstOrder(.adam(let adam)) = spec.optimizer else {
            Issue.record("default optimizer is \(spec.optimizer), not adam")
            return
        }
        #expect(adam.lr == 0.001)
        #expect(adam.beta1 == 0.9)
        #expect(adam.beta2 == 0.999)
        #expect(adam.eps == 1e-8)
        #expect(adam.weightDecay == 0)
        #expect(adam.amsgrad == false)
        #expect(spec.optimizer.learningRate == 0.001)
        #expect(spec.training.epochs == 20)
        #expect(spec.training.batchSize == 32)
        #expect(spec.training.shuffle)
        #expect(spec.training.seed == 0)
        #expect(spec.training.gradientClipNorm == nil)
        #expect(spec.training.gradientClipValue == nil)
        #expect(spec.regularization.l1 == 0)
        #expect(spec.regularization.l2 == 0)
        #expect(spec.priority == 0)
        #expect(spec.maxAttempts == 3)
    }

    @Test func theFilledInJSONOfAMinimalSpecShowsTheDefaultsOfTheAPI() throws {
        let filled = try JobSpec.parse(json(minimalSpec())).jsonValue
        let expected = json("""
        {
          "name": null, "task": "supervised", "dataset": {"id": "ds_x"},
          "validation": {"split": 0.2}, "test": {"split": 0}, "preprocessing": {"standardize": true},
          "model": {"input_shape": null, "layers": [{"type": "dense", "units": 3, "activation": "linear", "bias": true}]},
          "loss": {"type": "cross_entropy", "label_smoothing": 0, "class_weights": null},
          "optimizer": {"type": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0, "amsgrad": false},
          "schedule": null,
          "training": {"epochs": 20, "batch_size": 32, "shuffle": true, "seed": 0, "gradient_clip_norm": null,
                       "gradient_clip_value": null, "sampling": "uniform"},
          "regularization": {"l1": 0, "l2": 0, "elastic_net": null, "max_norm": null},
          "early_stopping": null, "augmentation": [], "compression": [], "distillation": null, "init": null,
          "distributed": null, "priority": 0, "max_attempts": 3, "notify": null
        }
        """)
        #expect(filled == expected)
        // Every top-level key of API.md's example, no more and no less.
        guard case .object(let fields) = filled, case .object(let example) = json(apiExampleSpec) else {
            Issue.record("not objects")
            return
        }
        #expect(Set(fields.keys) == Set(example.keys))
        #expect(Set(fields.keys) == Set(JobSpec.topLevelKeys))
    }

    @Test func aDatasetCanBeNamedInsteadOfIdentified() throws {
        let spec = try JobSpec.parse(json(minimalSpec(dataset: #"{"name": "digits"}"#)))
        #expect(spec.dataset == .named("digits"))
        #expect(spec.dataset.storageIdentifier == "name:digits")
        #expect(spec.dataset.jsonValue == ["name": "digits"])
    }

    @Test func aBuiltinDatasetTakesItsOptions() throws {
        let spec = try JobSpec.parse(json(minimalSpec(dataset: #"{"builtin": "spirals", "samples": 1500, "classes": 3, "noise": 0.2, "seed": 7}"#)))
        #expect(spec.dataset == .builtin(.spirals, BuiltinDatasetOptions(samples: 1500, noise: 0.2, classes: 3, seed: 7)))
        #expect(spec.dataset.storageIdentifier == "builtin:spirals")
        let defaults = try JobSpec.parse(json(minimalSpec(dataset: #"{"builtin": "moons"}"#)))
        // Moons always has two classes, whatever the default of `classes` for the other generators.
        #expect(defaults.dataset == .builtin(.moons, BuiltinDatasetOptions(classes: 2)))
    }

    // MARK: Malformed specs, one problem each

    /// Cases that must each give exactly one problem at `path` whose message contains `message`.
    static let singleProblems: [(spec: String, path: String, message: String)] = [
        (minimalSpec(#", "optimzer": {"type": "sgd"}"#), "optimzer", "unknown key"),
        (minimalSpec(#", "training": {"epoch": 5}"#), "training.epoch", "unknown key"),
        (minimalSpec(#", "optimizer": {"type": "adam", "momentun": 0.9}"#), "optimizer.momentun", "unknown key"),
        (minimalSpec(dataset: #"{"id": "ds_x", "rows": 3}"#), "dataset.rows", "unknown key"),
        (#"{"dataset": {"id": "ds_x"}, "model": {"layers": [{"type": "dense", "units": 3, "activaton": "relu"}]}}"#,
         "model.layers[0].activaton", "unknown key"),
        (minimalSpec(#", "training": {"epochs": "ten"}"#), "training.epochs", "must be an integer"),
        (minimalSpec(#", "training": {"epochs": 2.5}"#), "training.epochs", "must be an integer"),
        (minimalSpec(#", "training": {"shuffle": 1}"#), "training.shuffle", "must be true or false"),
        (minimalSpec(#", "optimizer": {"lr": "fast"}"#), "optimizer.lr", "must be a number"),
        (minimalSpec(#", "optimizer": {"type": 3}"#), "optimizer.type", "must be a string"),
        (minimalSpec(#", "training": [20]"#), "training", "must be an object"),
        (minimalSpec(#", "name": 12"#), "name", "must be a string"),
        (#"{"dataset": "ds_x", "model": {"layers": [{"type": "dense", "units": 3}]}}"#, "dataset", "must be an object"),
        (#"{"dataset": {"id": "ds_x"}, "model": {"layers": [{"type": "dense", "units": "3"}]}}"#,
         "model.layers[0].units", "must be an integer"),
        (minimalSpec(#", "optimizer": {"lr": 0}"#), "optimizer.lr", "must be > 0"),
        (minimalSpec(#", "optimizer": {"lr": -0.1}"#), "optimizer.lr", "must be > 0, got -0.1"),
        (minimalSpec(#", "optimizer": {"type": "sgd", "lr": -1}"#), "optimizer.lr", "must be > 0"),
        (minimalSpec(#", "training": {"epochs": 0}"#), "training.epochs", "got 0"),
        (minimalSpec(#", "training": {"batch_size": 0}"#), "training.batch_size", "got 0"),
        (minimalSpec(#", "optimizer": {"type": "adam", "betas": [0.9, 0.99, 0.999]}"#), "optimizer.betas", "got 3"),
        (minimalSpec(#", "optimizer": {"type": "sgd", "lr": 0.1, "nesterov": true}"#), "optimizer.nesterov", "requires momentum > 0"),
        (minimalSpec(#", "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.5, "nesterov": true}"#),
         "optimizer.nesterov", "dampening = 0"),
        (minimalSpec(#", "optimizer": {"type": "adam", "betas": [0.9, 1.0]}"#), "optimizer.betas[1]", "must be in [0, 1), got 1"),
        (minimalSpec(#", "optimizer": {"type": "sgd", "betas": [0.9, 0.999]}"#), "optimizer.betas", "does not apply to the sgd optimizer"),
        (minimalSpec(#", "schedule": {"type": "step", "gamma": 0.1}"#), "schedule.step_size", "is required"),
        (minimalSpec(#", "schedule": {"type": "reduce_on_plateau", "per": "step"}"#), "schedule.per", "per epoch"),
        (minimalSpec(#", "schedule": {"type": "cosine", "t_max": 10, "warmup": {"epochs": 0}}"#), "schedule.warmup.epochs", "must"),
        (minimalSpec(#", "early_stopping": {"monitor": "val_loss", "patience": 5, "mode": "lowest"}"#), "early_stopping.mode", "must be one of"),
        (minimalSpec(#", "compression": [{"type": "prune", "amount": 1.5}]"#), "compression[0].amount", "must be a fraction in [0, 1)"),
        (minimalSpec(#", "augmentation": [{"type": "random_blur"}]"#), "augmentation[0].type", "random_shift"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_1", "alpha": 2}"#), "distillation.alpha", "must be in [0, 1]"),
        (minimalSpec(#", "init": {"from_job": 7}"#), "init.from_job", "must be a string"),
        (minimalSpec(#", "distributed": {"processes": 0}"#), "distributed.processes", "must be between 1 and 256"),
        (minimalSpec(#", "notify": {"url": "ftp://x/hook"}"#), "notify.url", "must be an absolute http or https URL"),
        (minimalSpec(#", "notify": {"events": ["succeeded"]}"#), "notify.url", "is required"),
        (minimalSpec(#", "notify": {"url": "http://x/hook", "events": ["started"]}"#), "notify.events", "must list states among"),
        (minimalSpec(#", "task": "gan""#).replacingOccurrences(of: #""model": {"layers": [{"type": "dense", "units": 3}]}"#,
                                                             with: #""model": {"generator": {"layers": [{"type": "dense", "units": 2}]}}"#),
         "model.discriminator", "is required"),
        (minimalSpec(#", "regularization": {"max_norm": -3}"#), "regularization.max_norm", "must be > 0"),
        (minimalSpec(#", "regularization": {"elastic_net": {"l1_ratio": 0.5}}"#), "regularization.elastic_net.alpha", "is required"),
        (minimalSpec(#", "optimizer": {"type": "rmsprop", "alpha": -1}"#), "optimizer.alpha", "must"),
        (minimalSpec(#", "optimizer": {"type": "adagrad", "betas": [0.9, 0.99]}"#), "optimizer.betas", "does not apply to the adagrad optimizer"),
        (minimalSpec(#", "optimizer": {"type": "lbfgs", "line_search_fn": "backtracking"}"#), "optimizer.line_search_fn", "strong_wolfe"),
        (minimalSpec(#", "optimizer": {"type": "bfgs", "c1": 0.95}"#), "optimizer.c2", "c1"),
        (minimalSpec(dataset: #"{"builtin": "gaussian_mixture", "classes": 3}"#), "dataset.classes", "always has 8 classes"),
        (#"{"dataset": {"id": "ds_x"}, "model": {"layers": [{"type": "conv2d", "kernel": 3}]}}"#,
         "model.layers[0].filters", "is required"),
        (minimalSpec(#", "regularization": {"l2": -0.1}"#), "regularization.l2", "must be ≥ 0"),
        (minimalSpec(#", "validation": {"split": 1.5}"#), "validation.split", "must be ≥ 0 and < 1"),
        (minimalSpec(#", "validation": {"split": 0.5}, "test": {"split": 0.5}"#), "test", "at least 5% for training"),
        (minimalSpec(dataset: #"{"id": "ds_x", "name": "digits"}"#), "dataset.name", "not both"),
        (minimalSpec(dataset: #"{"id": "ds_x", "samples": 100}"#), "dataset.samples", "only applies to a built-in dataset"),
        (minimalSpec(dataset: #"{"builtin": "moons", "classes": 3}"#), "dataset.classes", "always has 2 classes"),
        (minimalSpec(#", "loss": {"type": "mse", "label_smoothing": 0.1}"#), "loss.label_smoothing", "does not apply to mse"),
        (minimalSpec(#", "priority": 5000"#), "priority", "between -1000 and 1000"),
        (minimalSpec(#", "max_attempts": 0"#), "max_attempts", "got 0"),
        (minimalSpec(#", "training": {"gradient_clip_norm": 0}"#), "training.gradient_clip_norm", "must be > 0"),
    ]

    @Test(arguments: singleProblems.indices)
    func aMalformedSpecIsReportedWithThePathOfItsProblem(case index: Int) {
        let (spec, path, message) = Self.singleProblems[index]
        let issues = problems(spec)
        #expect(issues.count == 1, "\(spec) → \(issues)")
        #expect(issues.first?.path == path, "\(spec) → \(issues)")
        #expect(issues.first?.message.contains(message) == true, "\(issues.first?.message ?? "nothing") lacks \"\(message)\"")
    }

    /// Unknown names are refused with the choices listed.
    static let unknownNames: [(spec: String, path: String, choices: [String])] = [
        (minimalSpec(#", "optimizer": {"type": "sgdd"}"#), "optimizer.type", ["sgd", "adam", "rmsprop", "lbfgs", "\"sgdd\""]),
        (minimalSpec(#", "loss": "hinge""#), "loss", ["cross_entropy", "mse", "huber", "bce_with_logits", "\"hinge\""]),
        (minimalSpec(#", "loss": {"type": "hinge"}"#), "loss.type", ["cross_entropy", "mse", "huber", "bce_with_logits"]),
        (minimalSpec(dataset: #"{"builtin": "swirls"}"#), "dataset.builtin", ["spirals", "moons", "circles", "blobs", "xor"]),
        (#"{"dataset": {"id": "ds_x"}, "model": {"layers": [{"type": "dense", "units": 3}, {"type": "densse"}]}}"#,
         "model.layers[1].type", ["dense", "dropout", "activation", "\"densse\""]),
        (#"{"dataset": {"id": "ds_x"}, "model": {"layers": [{"type": "dense", "units": 3, "activation": "rleu"}]}}"#,
         "model.layers[0].activation", ["relu", "tanh", "sigmoid", "\"rleu\""]),
        (minimalSpec(#", "task": "unsupervised""#), "task", ["supervised", "gan"]),
    ]

    @Test(arguments: unknownNames.indices)
    func anUnknownNameIsRefusedWithTheChoicesListed(case index: Int) {
        let (spec, path, choices) = Self.unknownNames[index]
        let issues = problems(spec)
        #expect(issues.map(\.path) == [path], "\(spec) → \(issues)")
        for choice in choices {
            #expect(issues.first?.message.contains(choice) == true, "\(issues.first?.message ?? "nothing") lacks \(choice)")
        }
    }

    @Test func aSpecWithoutDatasetOrModelIsRefused() {
        let noDataset = problems(#"{"model": {"layers": [{"type": "dense", "units": 3}]}}"#)
        #expect(noDataset.map(\.path) == ["dataset"])
        #expect(noDataset.first?.message.contains("is required") == true)

        let noModel = problems(#"{"dataset": {"id": "ds_x"}}"#)
        #expect(noModel.map(\.path) == ["model"])
        #expect(noModel.first?.message.contains("is required") == true)

        let neither = problems("{}")
        #expect(Set(neither.map(\.path)) == ["dataset", "model"])

        let nullModel = problems(#"{"dataset": {"id": "ds_x"}, "model": null}"#)
        #expect(nullModel.map(\.path) == ["model"])

        let noLayers = problems(#"{"dataset": {"id": "ds_x"}, "model": {}}"#)
        #expect(noLayers.map(\.path) == ["model.layers"])

        let emptyLayers = problems(#"{"dataset": {"id": "ds_x"}, "model": {"layers": []}}"#)
        #expect(emptyLayers.map(\.path) == ["model.layers"])

        let emptyDataset = problems(#"{"dataset": {}, "model": {"layers": [{"type": "dense", "units": 3}]}}"#)
        #expect(emptyDataset.map(\.path) == ["dataset.id"])
    }

    @Test func everyProblemOfASpecIsReportedAtOnce() {
        let issues = problems("""
        {
          "dataset": {"id": "ds_x"},
          "optimzer": {"type": "sgd"},
          "model": {"layers": [{"type": "dense", "units": 0}, {"type": "conv2d"}]},
          "optimizer": {"type": "adam", "lr": -1, "betas": [0.9]},
          "training": {"epochs": 0, "batch_size": 0, "shuffle": "yes"},
          "schedule": {"type": "step"},
          "compression": [{"type": "prune"}],
          "regularization": {"l1": -1}
        }
        """)
        let expected: Set<String> = [
            "optimzer", "model.layers[0].units", "model.layers[1].filters", "optimizer.lr", "optimizer.betas",
            "training.epochs", "training.batch_size", "training.shuffle", "schedule.step_size", "compression[0].amount", "regularization.l1",
        ]
        #expect(issues.count == 11, "\(issues)")
        #expect(Set(issues.map(\.path)) == expected)
    }

    @Test func theErrorDescribesEveryProblemWithItsPath() {
        do {
            _ = try JobSpec.parse(json(minimalSpec(#", "optimizer": {"lr": 0}, "training": {"epochs": 0}"#)))
            Issue.record("parsed")
        } catch {
            #expect(error.issues.count == 2)
            #expect(error.description.contains("optimizer.lr: must be > 0, got 0"))
            #expect(error.description.contains("training.epochs: "))
        }
    }

    @Test func malformedJSONTextIsOneProblemAtTheRoot() {
        do {
            _ = try JobSpec.parse(Data(#"{"dataset": {"id": "ds_x"},"#.utf8))
            Issue.record("parsed")
        } catch {
            #expect(error.issues.count == 1)
            #expect(error.issues.first?.path == "")
            #expect(error.issues.first?.message.contains("malformed JSON") == true)
        }
    }

    @Test func aSpecThatIsNotAnObjectIsRefused() {
        let issues = problems("[1, 2]")
        #expect(issues.map(\.path) == [""])
        #expect(issues.first?.message.contains("must be an object") == true)
    }
}
