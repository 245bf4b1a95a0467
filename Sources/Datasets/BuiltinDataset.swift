import Foundation
import Tensors

/// Two-dimensional toy classification problems that need no upload.
public enum BuiltinDataset: String, Sendable, CaseIterable {
    /// `classes` arms winding out from the origin, interleaved (CS231n's spiral data).
    /// Noise perturbs each point's angle, in radians, as CS231n does.
    case spirals
    /// Two interleaving half circles (scikit-learn's `make_moons`).
    case moons
    /// A circle inside a circle of twice its radius (scikit-learn's `make_circles`, factor 0.5).
    case circles
    /// `classes` Gaussian blobs around seeded centers in [-1, 1]²; noise is their standard deviation.
    case blobs
    /// Uniform points in [-1, 1]², class 1 where x0 · x1 > 0 (same sign), class 0 elsewhere.
    case xor
    /// Eight Gaussians evenly spaced on a circle of radius 2 (the GAN mode-collapse benchmark of
    /// the unrolled-GAN paper), each of standard deviation `noise` (σ, default 0.1; the paper's 0.02
    /// is `"noise": 0.02`). The class is the mode's index k, centred at 2·(cos 2πk/8, sin 2πk/8).
    case gaussian_mixture
    /// Sequences of 32 steps of a noisy sine; the class is its frequency (k + 1 cycles). Samples [32, 1].
    case sine_sequences
    /// 16×16 grey images of a shape at a random place and size: square outline, disc, cross,
    /// triangle (the first `classes` of them). Samples [1, 16, 16].
    case shapes_images
}

/// The knobs of a built-in dataset; the defaults are the API's.
public struct BuiltinDatasetOptions: Sendable, Equatable {
    public var samples: Int
    /// The standard deviation of the Gaussian noise added to each coordinate (to the angle for spirals).
    public var noise: Double
    /// The number of classes, for the generators without a fixed count (`spirals`, `blobs`).
    public var classes: Int
    public var seed: UInt64

    public init(samples: Int = 2000, noise: Double = 0.1, classes: Int = 3, seed: UInt64 = 0) {
        self.samples = samples
        self.noise = noise
        self.classes = classes
        self.seed = seed
    }
}

extension BuiltinDataset {
    /// The class count of the generators that always make two classes; nil when `classes` decides.
    public var fixedClassCount: Int? {
        switch self {
        case .moons, .circles, .xor: 2
        case .gaussian_mixture: GaussianMixture.modes
        case .spirals, .blobs, .sine_sequences, .shapes_images: nil
        }
    }

    /// The most classes a generator can make (shapes_images draws four shapes).
    public var maximumClassCount: Int { self == .shapes_images ? 4 : 100 }

    /// The shape of one sample.
    public var sampleShape: [Int] {
        switch self {
        case .sine_sequences: [SequenceAndImageGenerators.steps, 1]
        case .shapes_images: [1, SequenceAndImageGenerators.side, SequenceAndImageGenerators.side]
        default: [2]
        }
    }

    /// `options.samples` rows of two features (`x0`, `x1`) and a class, in shuffled order.
    /// The same options always give the same dataset.
    public func generate(_ options: BuiltinDatasetOptions = BuiltinDatasetOptions()) -> TabularDataset {
        let classCount = fixedClassCount ?? options.classes
        precondition(options.samples >= 0, "samples must not be negative")
        precondition(classCount >= 1, "a dataset needs at least one class")
        precondition(options.noise >= 0 && options.noise.isFinite, "noise must be a finite standard deviation")

        var random = SeededGenerator(seed: options.seed, purpose: "builtin.\(rawValue)")
        switch self {
        case .sine_sequences: return SequenceAndImageGenerators.sineSequences(options, classCount: classCount, random: &random)
        case .shapes_images: return SequenceAndImageGenerators.shapeImages(options, classCount: classCount, random: &random)
        default: break
        }
        let noise = options.noise
        let samples = options.samples
        var points: [(x0: Double, x1: Double, label: Int32)] = []
        points.reserveCapacity(samples)

        func gaussian() -> Double { noise == 0 ? 0 : noise * Double(random.normal()) }
        /// Class sizes that differ by at most one, the larger ones first.
        func share(of samples: Int, forClass index: Int, of classes: Int) -> Int {
            samples / classes + (index < samples % classes ? 1 : 0)
        }
        /// `count` evenly spaced values from 0 to 1, both ends included.
        func fraction(_ index: Int, of count: Int) -> Double { count > 1 ? Double(index) / Double(count - 1) : 0 }

        switch self {
        case .spirals:
            for arm in 0..<classCount {
                let count = share(of: samples, forClass: arm, of: classCount)
                for index in 0..<count {
                    let radius = fraction(index, of: count)
                    // Each arm turns through 4 radians; the arms start evenly spaced around the circle.
                    let angle = 2 * Double.pi * Double(arm) / Double(classCount) + 4 * radius + gaussian()
                    points.append((radius * sin(angle), radius * cos(angle), Int32(arm)))
                }
            }
        case .moons:
            let outer = samples / 2
            for index in 0..<outer {
                let angle = Double.pi * fraction(index, of: outer)
                points.append((cos(angle) + gaussian(), sin(angle) + gaussian(), 0))
            }
            let inner = samples - outer
            for index in 0..<inner {
                let angle = Double.pi * fraction(index, of: inner)
                points.append((1 - cos(angle) + gaussian(), 0.5 - sin(angle) + gaussian(), 1))
            }
        case .circles:
            let outer = samples / 2
            for index in 0..<outer {
                let angle = 2 * Double.pi * Double(index) / Double(outer)
                points.append((cos(angle) + gaussian(), sin(angle) + gaussian(), 0))
            }
            let inner = samples - outer
            for index in 0..<inner {
                let angle = 2 * Double.pi * Double(index) / Double(inner)
                points.append((0.5 * cos(angle) + gaussian(), 0.5 * sin(angle) + gaussian(), 1))
            }
        case .blobs:
            let centers = (0..<classCount).map { _ in
                (Double(random.uniform(-1, 1)), Double(random.uniform(-1, 1)))
            }
            for (label, center) in centers.enumerated() {
                for _ in 0..<share(of: samples, forClass: label, of: classCount) {
                    points.append((center.0 + gaussian(), center.1 + gaussian(), Int32(label)))
                }
            }
        case .gaussian_mixture:
            for mode in 0..<classCount {
                let center = GaussianMixture.center(mode)
                for _ in 0..<share(of: samples, forClass: mode, of: classCount) {
                    points.append((center.x + gaussian(), center.y + gaussian(), Int32(mode)))
                }
            }
        case .xor:
            for _ in 0..<samples {
                let x0 = Double(random.uniform(-1, 1))
                let x1 = Double(random.uniform(-1, 1))
                // Labelled before the noise, so noise blurs the boundary instead of moving it.
                points.append((x0 + gaussian(), x1 + gaussian(), x0 * x1 > 0 ? 1 : 0))
            }
        case .sine_sequences, .shapes_images:
            preconditionFailure("generated above")
        }

        // Generated class by class; shuffled so that any prefix is a fair sample.
        var order = Array(points.indices)
        random.shuffle(&order)
        var features: [Float] = []
        features.reserveCapacity(2 * samples)
        var labels: [Int32] = []
        labels.reserveCapacity(samples)
        for index in order {
            features.append(Float(points[index].x0))
            features.append(Float(points[index].x1))
            labels.append(points[index].label)
        }
        return TabularDataset(
            features: features, rows: samples, featureCount: 2, featureNames: ["x0", "x1"],
            task: .classification, classes: (0..<classCount).map(String.init), classIndices: labels,
            targetValues: [], targetCount: classCount)
    }
}

/// The geometry of `gaussian_mixture`, for tests and clients that score generated samples.
public enum GaussianMixture {
    public static let modes = 8
    public static let radius = 2.0

    /// The centre of mode `index` (0 ..< 8): angle 2π·index/8 on the circle of radius 2.
    public static func center(_ index: Int) -> (x: Double, y: Double) {
        let angle = 2 * Double.pi * Double(index) / Double(modes)
        return (radius * cos(angle), radius * sin(angle))
    }
}
