import Datasets
import Foundation
import NeuralNetwork
import Optimizers
import Tensors
import Testing
@testable import Training

/// A GAN spec on `dataset` with small MLPs; `extra` is added at the top level (starts with a comma).
func ganSpec(_ extra: String = "", dataset: String = #"{"builtin": "gaussian_mixture"}"#,
             generator: String = #"[{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 2}]"#,
             discriminator: String = #"[{"type": "dense", "units": 16, "activation": "leaky_relu"}, {"type": "dense", "units": 1}]"#,
             latentDim: Int? = nil) -> String {
    let latent = latentDim.map { #""latent_dim": \#($0), "# } ?? ""
    return #"{"task": "gan", "dataset": "# + dataset + #", "model": {"generator": {"# + latent + #""layers": "# + generator
        + #"}, "discriminator": {"layers": "# + discriminator + "}}" + extra + "}"
}

/// How generated 2-D points sit on the 8 modes of `gaussian_mixture`: a point counts for its
/// nearest mode when it lies within 3σ of that mode's centre.
struct ModeCoverage: CustomStringConvertible {
    var perMode: [Int]
    var samples: Int
    /// Modes with at least one point within 3σ.
    var covered: Int { perMode.filter { $0 > 0 }.count }
    /// Fraction of points within 3σ of some mode.
    var highQuality: Double { Double(perMode.reduce(0, +)) / Double(max(samples, 1)) }
    var description: String { "\(covered)/8 modes covered, per mode \(perMode), \(Int((highQuality * 100).rounded()))% within 3σ" }

    init(_ values: [Float], sigma: Double) {
        samples = values.count / 2
        perMode = [Int](repeating: 0, count: GaussianMixture.modes)
        for i in 0..<samples {
            let x = Double(values[2 * i]), y = Double(values[2 * i + 1])
            let distances = (0..<GaussianMixture.modes).map { mode in
                let center = GaussianMixture.center(mode)
                return ((x - center.x) * (x - center.x) + (y - center.y) * (y - center.y)).squareRoot()
            }
            let nearest = distances.indices.min { distances[$0] < distances[$1] }!
            if distances[nearest] <= 3 * sigma { perMode[nearest] += 1 }
        }
    }
}

/// Parses, resolves and trains a GAN spec on its built-in dataset.
func trainGAN(_ specText: String, observer: (any TrainingObserver)? = nil) throws -> (GANTrainer, GANOutcome) {
    let spec = try JobSpec.parse(json(specText))
    guard case .builtin(let kind, let options) = spec.dataset else { preconditionFailure("a built-in dataset") }
    let dataset = kind.generate(options)
    let resolved = try spec.resolved(for: DatasetSummary(dataset))
    let trainer = try GANTrainer(spec: resolved, data: PreparedData(spec: resolved, dataset: dataset))
    return (trainer, try trainer.run(observer: observer))
}

@Suite("GAN jobs")
struct GANTests {
    // MARK: The spec

    @Test("a GAN spec parses with DCGAN's defaults and its filled-in JSON parses back to the same spec")
    func defaults() throws {
        let spec = try JobSpec.parse(json(ganSpec()))
        #expect(spec.task == .gan)
        let gan = try #require(spec.gan)
        #expect(gan.latentDim == 32)
        #expect(gan.generator.inputShape == [32])
        #expect(gan.generator.layers == [.dense(units: 16, activation: .relu, bias: true), .dense(units: 2, activation: .linear, bias: true)])
        #expect(gan.discriminator.inputShape == nil)
        #expect(spec.model == gan.generator)
        #expect(spec.optimizer == .firstOrder(.adam(AdamHyperparameters(lr: 2e-4, beta1: 0.5, beta2: 0.999))))
        #expect(spec.loss == .bceWithLogits)
        #expect(spec.validation == .split(0) && spec.test == .split(0))
        #expect(!spec.standardize)
        #expect(spec.schedule == nil)

        let resolved = try spec.resolved(for: DatasetSummary(rows: 100, sampleShape: [2], task: .classification, classCount: 8, targetCount: 8))
        #expect(resolved.gan?.discriminator.inputShape == [2])
        let stored = resolved.jsonValue
        #expect(stored["task"] == "gan")
        #expect(stored["model"]?["generator"]?["latent_dim"] == 32)
        #expect(stored["model"]?["discriminator"]?["input_shape"] == [2])
        #expect(stored["optimizer"]?["lr"] == 0.0002)
        #expect(stored["optimizer"]?["betas"] == [0.5, 0.999])
        let reparsed = try JobSpec.parse(stored)
        expectSameSpec(reparsed, resolved)
        #expect(reparsed.gan == resolved.gan)
        #expect(reparsed.task == .gan)
        // Parameters of both networks: G 32·16+16 + 16·2+2, D 2·16+16 + 16+1.
        #expect(resolved.size?.parameters == (528 + 34) + (48 + 17))
    }

    @Test("a given Adam keeps DCGAN's defaults for what it leaves out; another first-order optimizer is taken as is")
    func optimizerDefaults() throws {
        let adam = try JobSpec.parse(json(ganSpec(#", "optimizer": {"type": "adam", "lr": 0.001}"#)))
        #expect(adam.optimizer == .firstOrder(.adam(AdamHyperparameters(lr: 0.001, beta1: 0.5, beta2: 0.999))))
        let betas = try JobSpec.parse(json(ganSpec(#", "optimizer": {"betas": [0.9, 0.99]}"#)))
        #expect(betas.optimizer == .firstOrder(.adam(AdamHyperparameters(lr: 2e-4, beta1: 0.9, beta2: 0.99))))
        let sgd = try JobSpec.parse(json(ganSpec(#", "optimizer": {"type": "sgd", "lr": 0.01}"#)))
        #expect(sgd.optimizer.typeName == "sgd" && sgd.optimizer.learningRate == 0.01)
        // A supervised job keeps torch's Adam.
        #expect(try JobSpec.parse(json(minimalSpec())).optimizer == .firstOrder(.adam(AdamHyperparameters())))
        #expect(try JobSpec.parse(json(minimalSpec(#", "task": "supervised""#))).task == .supervised)
    }

    static let specProblems: [(spec: String, path: String, message: String)] = [
        (#"{"task": "gan", "dataset": {"builtin": "gaussian_mixture"}, "model": {"discriminator": {"layers": [{"type": "dense", "units": 1}]}}}"#,
         "model.generator", "is required"),
        (#"{"task": "gan", "dataset": {"builtin": "gaussian_mixture"}, "model": {"generator": {"layers": [{"type": "dense", "units": 2}]}}}"#,
         "model.discriminator", "is required"),
        (#"{"task": "gan", "dataset": {"builtin": "gaussian_mixture"}}"#, "model", "generator"),
        (ganSpec().replacingOccurrences(of: #""model": {"#, with: #""model": {"layers": [], "#), "model.layers", "unknown key"),
        (ganSpec(latentDim: 0), "model.generator.latent_dim", "between 1 and 65536"),
        (ganSpec(generator: "[]"), "model.generator.layers", "at least one layer"),
        (ganSpec(discriminator: #"[{"type": "dense"}]"#), "model.discriminator.layers[0].units", "is required"),
        (ganSpec().replacingOccurrences(of: #""generator": {"#, with: #""generator": {"preset": "mlp", "#), "model.generator.preset", "unknown key"),
        (ganSpec(#", "loss": "mse""#), "loss", "bce_with_logits"),
        (ganSpec(#", "optimizer": {"type": "lbfgs"}"#), "optimizer.type", "first-order"),
        (ganSpec(#", "optimizer": {"type": "gd", "lr": 0.1}"#), "optimizer.type", "first-order"),
        (ganSpec(#", "optimizer": {"type": "adam", "lr": -1}"#), "optimizer.lr", "must be > 0"),
        (ganSpec(#", "validation": {"split": 0.2}"#), "validation", "does not apply to a GAN job"),
        (ganSpec(#", "test": {"split": 0.1}"#), "test", "does not apply to a GAN job"),
        (ganSpec(#", "schedule": {"type": "step", "step_size": 5}"#), "schedule", "not supported for GAN jobs"),
        (ganSpec(#", "regularization": {"l2": 0.001}"#), "regularization.l2", "not supported for GAN jobs"),
        (ganSpec(#", "task": "gann""#).replacingOccurrences(of: #"{"task": "gan", "#, with: "{"), "task", "\"gann\""),
    ]

    @Test("a malformed GAN spec answers every problem with its path", arguments: specProblems.indices)
    func malformed(case index: Int) {
        let (spec, path, message) = Self.specProblems[index]
        let issues = problems(spec)
        #expect(issues.map(\.path).contains(path), "\(spec) → \(issues)")
        #expect(issues.first { $0.path == path }?.message.contains(message) == true, "\(issues)")
    }

    static let points = DatasetSummary(rows: 200, sampleShape: [2], task: .classification, classCount: 8, targetCount: 8)
    static let images = DatasetSummary(rows: 200, sampleShape: [1, 16, 16], task: .classification, classCount: 4, targetCount: 4)

    func resolveIssues(_ text: String, _ data: DatasetSummary) throws -> [SpecIssue] {
        do {
            _ = try JobSpec.parse(json(text)).resolved(for: data)
            return []
        } catch {
            return error.issues
        }
    }

    @Test("the discriminator must output one logit, the generator the data's sample shape: 422s naming both shapes")
    func shapesAgainstTheData() throws {
        let twoLogits = try resolveIssues(ganSpec(discriminator: #"[{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]"#), Self.points)
        #expect(twoLogits.map(\.path) == ["model.discriminator.layers[1].units"])
        #expect(twoLogits.first?.message.contains("must output 1 value") == true && twoLogits.first?.message.contains("got 2") == true, "\(twoLogits)")

        let wrongWidth = try resolveIssues(ganSpec(generator: #"[{"type": "dense", "units": 3}]"#), Self.points)
        #expect(wrongWidth.map(\.path) == ["model.generator.layers"])
        #expect(wrongWidth.first?.message.contains("[3]") == true && wrongWidth.first?.message.contains("[2]") == true, "\(wrongWidth)")

        // Both at once, with the images' shape; a flat generator of the right size is told to reshape.
        let flat = try resolveIssues(ganSpec(generator: #"[{"type": "dense", "units": 256, "activation": "tanh"}]"#,
                                             discriminator: #"[{"type": "flatten"}, {"type": "dense", "units": 4}]"#), Self.images)
        #expect(Set(flat.map(\.path)) == ["model.generator.layers", "model.discriminator.layers[1].units"], "\(flat)")
        let generatorIssue = flat.first { $0.path == "model.generator.layers" }?.message ?? ""
        #expect(generatorIssue.contains("[256]") && generatorIssue.contains("[1, 16, 16]") && generatorIssue.contains("reshape"), "\(generatorIssue)")

        // A layer that does not fit the data is reported under the network's own path.
        let conv = try resolveIssues(ganSpec(discriminator: #"[{"type": "conv2d", "filters": 4}, {"type": "dense", "units": 1}]"#), Self.points)
        #expect(conv.first?.path.hasPrefix("model.discriminator.layers[0]") == true, "\(conv)")

        let inputShape = try resolveIssues(ganSpec().replacingOccurrences(of: #""discriminator": {"#, with: #""discriminator": {"input_shape": [3], "#), Self.points)
        #expect(inputShape.map(\.path) == ["model.discriminator.input_shape"], "\(inputShape)")

        // An image GAN that fits.
        let images = try JobSpec.parse(json(ganSpec(
            generator: #"[{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 256, "activation": "sigmoid"}, {"type": "reshape", "shape": [1, 16, 16]}]"#,
            discriminator: #"[{"type": "conv2d", "filters": 4, "stride": 2, "activation": "leaky_relu"}, {"type": "flatten"}, {"type": "dense", "units": 1}]"#)))
            .resolved(for: Self.images)
        #expect(images.gan?.discriminator.inputShape == [1, 16, 16])
    }

    // MARK: The network's input gradient

    @Test("Network.backward returns dL/dx when asked, matching finite differences")
    func inputGradient() {
        let spec = ModelSpec(inputShape: [3], layers: [.dense(units: 5, activation: .tanh, bias: true), .dense(units: 1, activation: .linear, bias: true)])
        let network = Network(spec: spec, seed: 4)
        let x = Tensor(shape: [2, 3], values: [0.3, -0.2, 0.5, -0.7, 0.1, 0.9])
        // L = Σ outputs, so dL/d(output) = 1.
        let ones = Tensor(shape: [2, 1], repeating: 1)
        _ = network.forward(x, isTraining: false)
        let gradient = network.backward(ones, returnInputGradient: true)!.array
        #expect(network.backward(ones, returnInputGradient: false) == nil)
        for i in 0..<x.count {
            let original = x[i]
            x[i] = original + 1e-2
            let plus = network.forward(x, isTraining: false).array.reduce(0, +)
            x[i] = original - 1e-2
            let minus = network.forward(x, isTraining: false).array.reduce(0, +)
            x[i] = original
            #expect(abs((plus - minus) / 2e-2 - gradient[i]) < 1e-3, "dL/dx[\(i)]")
        }
    }

    // MARK: Training

    @Test("on gaussian_mixture the generator covers at least 7 of the 8 modes (1000 samples, 3σ), with a fixed seed")
    func coversTheModes() throws {
        // σ = 0.1 (the dataset's default noise). 150 epochs of 32 batches; Adam at lr 1e-3 with DCGAN's
        // betas (at DCGAN's 2e-4 this small problem needs several times the steps). Over seeds 0…19
        // every run covered ≥ 7 modes (19 of them all 8) with ≥ 62% of the samples within 3σ.
        let sigma = 0.1
        // examples/gaussian-mixture-gan.json: 2000 points of σ 0.1; G 8 → 64 → 64 → 2, D 2 → 64 → 64 → 1.
        let spec = try String(contentsOf: SharedFolder.example("gaussian-mixture-gan.json"), encoding: .utf8)
        let clock = ContinuousClock()
        let start = clock.now
        let (_, outcome) = try trainGAN(spec)
        let coverage = ModeCoverage(outcome.model.sample(count: 1000, seed: 11), sigma: sigma)
        let last = try #require(outcome.history.last)
        print("GAN on gaussian_mixture: \(coverage); D(x) \(last.meanRealScore ?? .nan), D(G(z)) \(last.meanFakeScore ?? .nan), d_loss \(last.discriminatorLoss ?? .nan), g_loss \(last.generatorLoss ?? .nan), trained in \(clock.now - start)")
        #expect(coverage.covered >= 7, "\(coverage)")
        // A generator smeared along the whole ring would put about 38% of its samples within 3σ of a mode.
        #expect(coverage.highQuality >= 0.5, "\(coverage)")
        // Near the equilibrium D cannot tell real from generated: both means are far from 0 and 1.
        #expect((0.2...0.8).contains(last.meanRealScore ?? -1) && (0.2...0.8).contains(last.meanFakeScore ?? -1), "\(last)")
        #expect(outcome.history.count == 150 && !outcome.wasStopped)
    }

    @Test("every epoch reports d_loss, g_loss, D(x) and D(G(z)); train_loss is the generator's loss")
    func epochMetrics() throws {
        let observer = RecordingObserver()
        let (_, outcome) = try trainGAN(ganSpec(#", "training": {"epochs": 3, "batch_size": 50}"#,
                                                dataset: #"{"builtin": "gaussian_mixture", "samples": 230}"#), observer: observer)
        #expect(observer.epochs == outcome.history)
        #expect(outcome.history.map(\.epoch) == [1, 2, 3])
        for metrics in outcome.history {
            let d = try #require(metrics.discriminatorLoss), g = try #require(metrics.generatorLoss)
            let real = try #require(metrics.meanRealScore), fake = try #require(metrics.meanFakeScore)
            #expect(d.isFinite && d > 0 && g.isFinite && g > 0)
            #expect((0...1).contains(real) && (0...1).contains(fake))
            #expect(metrics.trainLoss == g)
            #expect(metrics.trainAccuracy == nil && metrics.validationLoss == nil && metrics.validationAccuracy == nil)
            #expect(metrics.learningRate == 0.0002)
            #expect(metrics.gradientNorm > 0 && metrics.seconds > 0 && metrics.samplesPerSecond > 0)
        }
        // 5 batches per epoch: the observer is asked before each.
        #expect(observer.batchChecks == 15)
        // A supervised job's metrics have no GAN fields.
        let (_, supervised) = try train(minimalSpec(#", "training": {"epochs": 1}"#), on: BuiltinDataset.blobs.generate(BuiltinDatasetOptions(samples: 60)))
        #expect(supervised.history.allSatisfy { $0.discriminatorLoss == nil && $0.generatorLoss == nil && $0.meanRealScore == nil && $0.meanFakeScore == nil })
    }

    @Test("the same seed trains the same GAN; another seed another")
    func reproducible() throws {
        let spec = ganSpec(#", "training": {"epochs": 2, "seed": 5}"#, dataset: #"{"builtin": "gaussian_mixture", "samples": 200}"#)
        let (first, _) = try trainGAN(spec)
        let (second, _) = try trainGAN(spec)
        let (other, _) = try trainGAN(spec.replacingOccurrences(of: #""seed": 5"#, with: #""seed": 6"#))
        #expect(parameterValues(first.generator) == parameterValues(second.generator))
        #expect(parameterValues(first.discriminator) == parameterValues(second.discriminator))
        #expect(parameterValues(first.generator) != parameterValues(other.generator))
        // The two networks do not start from the same draws.
        #expect(first.generator.parameters[0].value.array.prefix(4) != first.discriminator.parameters[0].value.array.prefix(4))
    }

    @Test("a stop request ends training between batches")
    func cancellation() throws {
        let observer = RecordingObserver(stopAfterBatches: 3)
        let (_, outcome) = try trainGAN(ganSpec(#", "training": {"epochs": 5, "batch_size": 10}"#,
                                                dataset: #"{"builtin": "gaussian_mixture", "samples": 100}"#), observer: observer)
        #expect(outcome.wasStopped)
        #expect(outcome.history.isEmpty)
        #expect(observer.batchChecks == 4)
    }

    @Test("a GAN whose losses blow up fails as diverged")
    func divergence() throws {
        let spec = ganSpec(#", "optimizer": {"type": "sgd", "lr": 1e30}, "training": {"epochs": 5}"#,
                           dataset: #"{"builtin": "gaussian_mixture", "samples": 200}"#)
        #expect {
            _ = try trainGAN(spec)
        } throws: { error in
            guard case .diverged(let epoch, let loss)? = error as? TrainingError else { return false }
            return epoch >= 1 && !loss.isFinite
        }
    }

    @Test("batch norm in both networks trains, skipping a last batch of one sample")
    func batchNorm() throws {
        let (_, outcome) = try trainGAN(ganSpec(#", "training": {"epochs": 2, "batch_size": 16}"#,
                                                dataset: #"{"builtin": "gaussian_mixture", "samples": 33}"#,
                                                generator: #"[{"type": "dense", "units": 8}, {"type": "batch_norm"}, {"type": "activation", "name": "relu"}, {"type": "dense", "units": 2}]"#,
                                                discriminator: #"[{"type": "dense", "units": 8}, {"type": "batch_norm"}, {"type": "activation", "name": "leaky_relu"}, {"type": "dense", "units": 1}]"#))
        #expect(outcome.history.count == 2)
        #expect(outcome.history.allSatisfy { $0.discriminatorLoss?.isFinite == true })
    }

    // MARK: The saved model

    @Test("the saved GAN holds both networks under their prefixes and loads back to the same generator")
    func saveAndLoad() throws {
        let (trainer, outcome) = try trainGAN(ganSpec(#", "preprocessing": {"standardize": true}, "training": {"epochs": 2}"#,
                                                      dataset: #"{"builtin": "gaussian_mixture", "samples": 200}"#,
                                                      latentDim: 4))
        let data = outcome.model.safetensors()
        let file = try SafeTensorsFile.parse(data)
        let names = Set(file.tensors.map(\.name))
        #expect(names == ["generator.layers.0.weight", "generator.layers.0.bias", "generator.layers.1.weight", "generator.layers.1.bias",
                          "discriminator.layers.0.weight", "discriminator.layers.0.bias", "discriminator.layers.1.weight", "discriminator.layers.1.bias"])
        #expect(file.tensor(named: "generator.layers.0.weight")?.shape == [16, 4])
        #expect(file.tensor(named: "discriminator.layers.1.weight")?.shape == [1, 16])
        #expect(file.tensor(named: "generator.layers.1.bias")?.values == trainer.generator.parameters[3].value.array)
        let metadata = file.metadata
        #expect(metadata["format"] == "descent" && metadata["version"] == "1")
        #expect(metadata["task"] == "gan")
        #expect(metadata["latent_dim"] == "4")
        #expect(metadata["input_shape"] == "[4]")
        #expect(metadata["sample_shape"] == "[2]")
        let architecture = try JSONValue.parse(Data(try #require(metadata["architecture"]).utf8))
        #expect(architecture == trainer.gan.jsonValue)
        #expect(try JSONValue.parse(Data(try #require(metadata["generator_architecture"]).utf8))["input_shape"] == [4])
        #expect(try JSONValue.parse(Data(try #require(metadata["discriminator_architecture"]).utf8))["input_shape"] == [2])
        let preprocessing = try JSONValue.parse(Data(try #require(metadata["preprocessing"]).utf8))
        guard case .array(let mean)? = preprocessing["mean"] else { Issue.record("no mean in \(preprocessing)"); return }
        #expect(mean.count == 2)

        let loaded = try GANModel.load(data)
        #expect(loaded.latentDim == 4 && loaded.sampleShape == [2])
        #expect(parameterValues(loaded.generator) == parameterValues(trainer.generator))
        #expect(parameterValues(loaded.discriminator) == parameterValues(trainer.discriminator))
        #expect(loaded.standardization == trainer.data.standardization)
        let samples = outcome.model.sample(count: 20, seed: 9)
        #expect(samples.count == 40)
        #expect(loaded.sample(count: 20, seed: 9) == samples)
        #expect(loaded.sample(count: 20, seed: 10) != samples)
        // Samples come back in the data's units: the ring has radius 2.
        let radii = (0..<20).map { (i: Int) -> Double in
            let x = Double(samples[2 * i]), y = Double(samples[2 * i + 1])
            return (x * x + y * y).squareRoot()
        }
        #expect(radii.allSatisfy { $0 < 10 })
        #expect(loaded.valueRange.map { $0.min < -1.5 && $0.max > 1.5 } == true)

        #expect(GANModel.isGAN(data))
        #expect {
            _ = try TrainedModel.load(data)
        } throws: { error in
            "\(error)".contains("GAN")
        }
    }
}
