import Datasets
import Foundation
import NeuralNetwork
import Optimizers
import Tensors

public struct GANOutcome {
    public var model: GANModel
    public var history: [EpochMetrics]
    public var wasStopped: Bool
}

/// Trains a GAN job (`"task": "gan"`) the DCGAN way, batch by batch:
///
/// 1. Discriminator step: BCE with logits on a batch of real samples (target 1) and on as many
///    generated ones G(z) (target 0), gradients into D only; D's optimizer steps.
/// 2. Generator step: the same G(z) through the updated D with target 1 — the non-saturating loss
///    −log D(G(z)) — its gradient flowing back through D's input into G; G's optimizer steps.
///
/// Latent noise z ~ N(0, I) comes from a generator seeded for `latent`, the batch order from one
/// seeded for `shuffle`, so a seed reproduces a run. Everything the per-batch path touches is
/// allocated in `init` or on the first batch.
public final class GANTrainer {
    public let spec: JobSpec
    public let gan: GANSpec
    public let data: PreparedData
    public let generator: Network
    public let discriminator: Network
    public let generatorOptimizer: any Optimizer
    public let discriminatorOptimizer: any Optimizer
    private let generatorParameters: [Parameter]
    private let discriminatorParameters: [Parameter]
    private let generatorWeights: [Parameter]
    private let loss = LossFunction(spec: .bceWithLogits)
    let batchSize: Int

    private let realBatch: Tensor
    private let latent: Tensor
    private let ones: Tensor
    private let zeros: Tensor
    private let logitGradient: Tensor
    private var order: [Int]
    private var shuffleGenerator: SeededGenerator
    private var latentGenerator: SeededGenerator
    /// A batch of one has no batch statistics: batch norm in either network cannot train on it.
    private let needsTwoSamples: Bool

    public init(spec: JobSpec, data: PreparedData) throws {
        guard spec.task == .gan, let gan = spec.gan, gan.discriminator.inputShape != nil, gan.generator.inputShape != nil else {
            throw TrainingError.invalidSpec("a GAN trainer needs a resolved GAN spec (task gan, model.generator and model.discriminator)")
        }
        guard case .firstOrder(let optimizerSpec) = spec.optimizer else {
            throw TrainingError.invalidSpec("optimizer.type: a GAN job takes a first-order optimizer, got \(spec.optimizer.typeName)")
        }
        self.spec = spec
        self.gan = gan
        self.data = data
        let seed = spec.training.seed
        generator = Network(spec: gan.generator, seed: seed)
        // Its own seed, so the two networks' initial weights and dropout masks are independent draws.
        var discriminatorSeed = SeededGenerator(seed: seed, purpose: "discriminator")
        discriminator = Network(spec: gan.discriminator, seed: discriminatorSeed.next())
        generatorParameters = generator.parameters
        discriminatorParameters = discriminator.parameters
        generatorWeights = generatorParameters.filter(\.isWeight)
        generatorOptimizer = try optimizerSpec.makeOptimizer(parameters: generatorParameters)
        discriminatorOptimizer = try optimizerSpec.makeOptimizer(parameters: discriminatorParameters)

        let batch = spec.training.batchSize
        batchSize = batch
        realBatch = Tensor(shape: [batch] + discriminator.inputShape)
        latent = Tensor(shape: [batch, gan.latentDim])
        ones = Tensor(shape: [batch] + discriminator.outputShape, repeating: 1)
        zeros = Tensor(shape: [batch] + discriminator.outputShape, repeating: 0)
        logitGradient = Tensor(shape: [batch] + discriminator.outputShape)
        order = Array(0..<data.train.rows)
        shuffleGenerator = SeededGenerator(seed: seed, purpose: "shuffle")
        latentGenerator = SeededGenerator(seed: seed, purpose: "latent")
        needsTwoSamples = gan.generator.usesBatchStatistics || gan.discriminator.usesBatchStatistics
    }

    /// Trains epoch by epoch, from the start or from `checkpoint` (the bytes an observer was handed
    /// after an epoch of a run of this same spec), which goes on exactly as the run would have.
    public func run(observer: (any TrainingObserver)? = nil, resumingFrom checkpoint: Data? = nil) throws -> GANOutcome {
        var history: [EpochMetrics] = []
        var stopped = false
        var epoch = 1
        if let checkpoint {
            let reader = try TrainingCheckpoint.Reader(checkpoint)
            try restore(from: reader)
            history = try reader.decode([EpochMetrics].self, "history")
            epoch = reader.epoch + 1
        }
        while epoch <= spec.training.epochs {
            guard let metrics = try trainEpoch(epoch, observer: observer) else { stopped = true; break }
            history.append(metrics)
            let finished = epoch
            observer?.epochDidFinish(metrics) { self.checkpoint(epoch: finished, history: history) }
            epoch += 1
        }
        return GANOutcome(model: makeModel(), history: history, wasStopped: stopped)
    }

    /// Both networks, both optimizers, the batch order and the shuffle, latent and dropout generators.
    private func checkpoint(epoch: Int, history: [EpochMetrics]) -> Data {
        var writer = TrainingCheckpoint.Writer(epoch: epoch, history: history)
        writer.add(generator, as: "generator")
        writer.add(discriminator, as: "discriminator")
        writer.add(generatorOptimizer, as: "generator_optimizer")
        writer.add(discriminatorOptimizer, as: "discriminator_optimizer")
        writer.add(order: order, as: "order")
        writer.set("generators", GANGenerators(shuffle: shuffleGenerator, latent: latentGenerator,
                                               generatorDropout: generator.stochasticLayers.map(\.generator),
                                               discriminatorDropout: discriminator.stochasticLayers.map(\.generator)))
        return writer.data
    }

    private func restore(from reader: TrainingCheckpoint.Reader) throws {
        try reader.restore(generator, from: "generator")
        try reader.restore(discriminator, from: "discriminator")
        try reader.restore(generatorOptimizer, from: "generator_optimizer")
        try reader.restore(discriminatorOptimizer, from: "discriminator_optimizer")
        order = try reader.order("order", count: order.count, rows: data.train.rows)
        let generators = try reader.decode(GANGenerators.self, "generators")
        shuffleGenerator = generators.shuffle
        latentGenerator = generators.latent
        try generator.restoreGenerators(generators.generatorDropout)
        try discriminator.restoreGenerators(generators.discriminatorDropout)
    }

    private struct GANGenerators: Codable {
        var shuffle: SeededGenerator
        var latent: SeededGenerator
        var generatorDropout: [SeededGenerator]
        var discriminatorDropout: [SeededGenerator]
    }

    /// The trained networks with what `/samples` needs: latent size, sample shape, the
    /// standardization to undo and the data's value range (for images).
    public func makeModel() -> GANModel {
        GANModel(generator: generator, discriminator: discriminator, latentDim: gan.latentDim,
                 standardization: data.standardization, valueRange: GANModel.valueRange(of: data))
    }

    /// One pass over the training set; nil when the observer asked to stop.
    func trainEpoch(_ epoch: Int, observer: (any TrainingObserver)?) throws -> EpochMetrics? {
        let train = data.train
        if spec.training.shuffle { shuffleGenerator.shuffle(&order) }
        let start = DispatchTime.now().uptimeNanoseconds
        var discriminatorLossSum = 0.0, generatorLossSum = 0.0, realScoreSum = 0.0, fakeScoreSum = 0.0
        var gradientNormSum = 0.0, seen = 0, steps = 0
        var batchStart = 0
        while batchStart < train.rows {
            if observer?.shouldStop() == true { return nil }
            let count = min(batchSize, train.rows - batchStart)
            if count == 1, batchStart > 0, needsTwoSamples { break }
            loadRealBatch(from: train, positions: batchStart..<(batchStart + count))
            drawLatent(count)
            ones.setBatchSize(count)
            zeros.setBatchSize(count)

            // Discriminator: real → 1, generated → 0 (G's output is not differentiated here).
            discriminatorOptimizer.zeroGradients()
            let realLogits = discriminator.forward(realBatch, isTraining: true)
            let realLoss = loss.evaluate(predictions: realLogits, classTargets: nil, valueTargets: ones.pointer, gradient: logitGradient)
            realScoreSum += Self.sigmoidSum(realLogits)
            discriminator.backward(logitGradient)
            let fake = generator.forward(latent, isTraining: true)
            let fakeLogits = discriminator.forward(fake, isTraining: true)
            let fakeLoss = loss.evaluate(predictions: fakeLogits, classTargets: nil, valueTargets: zeros.pointer, gradient: logitGradient)
            fakeScoreSum += Self.sigmoidSum(fakeLogits)
            discriminator.backward(logitGradient)
            let discriminatorLoss = realLoss + fakeLoss
            guard discriminatorLoss.isFinite else { throw TrainingError.diverged(epoch: epoch, loss: discriminatorLoss) }
            _ = clipGradients(discriminatorParameters)
            discriminatorOptimizer.step()

            // Generator, non-saturating: the same G(z) through the updated D, labelled real.
            generatorOptimizer.zeroGradients()
            let logits = discriminator.forward(fake, isTraining: true)
            let generatorLoss = loss.evaluate(predictions: logits, classTargets: nil, valueTargets: ones.pointer, gradient: logitGradient)
            guard generatorLoss.isFinite else { throw TrainingError.diverged(epoch: epoch, loss: generatorLoss) }
            guard let fakeGradient = discriminator.backward(logitGradient, returnInputGradient: true) else {
                throw TrainingError.invalidSpec("model.discriminator.layers[0]: the discriminator has no gradient with respect to its input (an embedding layer?), so the generator cannot learn through it")
            }
            generator.backward(fakeGradient)
            gradientNormSum += clipGradients(generatorParameters)
            generatorOptimizer.step()

            discriminatorLossSum += discriminatorLoss * Double(count)
            generatorLossSum += generatorLoss * Double(count)
            seen += count
            steps += 1
            batchStart += count
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let samples = Double(max(seen, 1))
        let outputs = Double(max(seen * discriminator.outputShape.reduce(1, *), 1))
        let learningRate = generatorOptimizer.learningRate
        return EpochMetrics(
            epoch: epoch, trainLoss: generatorLossSum / samples, trainAccuracy: nil, validationLoss: nil, validationAccuracy: nil,
            learningRate: Double(String(learningRate)) ?? Double(learningRate), gradientNorm: gradientNormSum / Double(max(steps, 1)),
            penalty: 0, sparsity: sparsity(), seconds: seconds, samplesPerSecond: Double(seen) / max(seconds, 1e-9),
            discriminatorLoss: discriminatorLossSum / samples, generatorLoss: generatorLossSum / samples,
            meanRealScore: realScoreSum / outputs, meanFakeScore: fakeScoreSum / outputs)
    }

    /// Copies the rows at `order[positions]` into the real batch.
    private func loadRealBatch(from dataset: TabularDataset, positions: Range<Int>) {
        let rowSize = dataset.featureCount
        realBatch.setBatchSize(positions.count)
        dataset.features.withUnsafeBufferPointer { features in
            for (slot, position) in positions.enumerated() {
                (realBatch.pointer + slot * rowSize).update(from: features.baseAddress! + order[position] * rowSize, count: rowSize)
            }
        }
    }

    /// z ~ N(0, I) for `count` samples.
    private func drawLatent(_ count: Int) {
        latent.setBatchSize(count)
        let z = latent.pointer
        for i in 0..<latent.count { z[i] = latentGenerator.normal() }
    }

    /// Σ σ(logit) over a batch of logits.
    static func sigmoidSum(_ logits: Tensor) -> Double {
        var sum = 0.0
        let p = logits.pointer
        for i in 0..<logits.count {
            let v = p[i]
            sum += Double(v >= 0 ? 1 / (1 + expf(-v)) : expf(v) / (1 + expf(v)))
        }
        return sum
    }

    /// Clips one network's gradients by value, then by global norm, as the spec says; returns the norm before clipping.
    private func clipGradients(_ parameters: [Parameter]) -> Double {
        Training.clipGradients(parameters, byValue: spec.training.gradientClipValue, byNorm: spec.training.gradientClipNorm)
    }

    /// Fraction of the generator's weights that are exactly zero.
    private func sparsity() -> Double {
        var zeros = 0, total = 0
        for parameter in generatorWeights {
            total += parameter.count
            for value in parameter.value.values where value == 0 { zeros += 1 }
        }
        return total == 0 ? 0 : Double(zeros) / Double(total)
    }
}
