import Foundation
import Tensors

/// The built-in sequence and image datasets: small enough to train in seconds, hard enough that
/// a model has to use the structure (time or space) to get them right.
enum SequenceAndImageGenerators {
    static let steps = 32
    static let side = 16

    /// Class k: sin(2π·(k+1)·t/T + φ) with a random phase φ and amplitude in [0.5, 1.5], plus
    /// Gaussian noise of `options.noise`. Only the frequency tells the classes apart.
    static func sineSequences(_ options: BuiltinDatasetOptions, classCount: Int, random: inout SeededGenerator) -> TabularDataset {
        var features = [Float](repeating: 0, count: options.samples * steps)
        var labels = [Int32](repeating: 0, count: options.samples)
        for row in 0..<options.samples {
            let label = row % classCount
            labels[row] = Int32(label)
            let phase = Double(random.uniform(0, 2 * .pi))
            let amplitude = Double(random.uniform(0.5, 1.5))
            for t in 0..<steps {
                let value = amplitude * sin(2 * .pi * Double(label + 1) * Double(t) / Double(steps) + phase)
                features[row * steps + t] = Float(value) + Float(options.noise) * random.normal()
            }
        }
        return shuffled(features, labels, rowSize: steps, names: (0..<steps).map { "t\($0)" }, sampleShape: [steps, 1],
                        classNames: (0..<classCount).map { "\($0 + 1)_cycles" }, random: &random)
    }

    static let shapeNames = ["square", "disc", "cross", "triangle"]

    /// A shape of random size (5–12 pixels) at a random place on a dark background, values in
    /// [0, 1] plus Gaussian noise of `options.noise`.
    static func shapeImages(_ options: BuiltinDatasetOptions, classCount: Int, random: inout SeededGenerator) -> TabularDataset {
        let pixels = side * side
        var features = [Float](repeating: 0, count: options.samples * pixels)
        var labels = [Int32](repeating: 0, count: options.samples)
        for row in 0..<options.samples {
            let label = row % classCount
            labels[row] = Int32(label)
            let size = 5 + Int(random.next() % 8)
            let left = Int(random.next() % UInt64(side - size + 1)), top = Int(random.next() % UInt64(side - size + 1))
            for y in 0..<size {
                for x in 0..<size {
                    if covers(shape: label, x: x, y: y, size: size) { features[row * pixels + (top + y) * side + left + x] = 1 }
                }
            }
            if options.noise > 0 {
                for i in 0..<pixels { features[row * pixels + i] += Float(options.noise) * random.normal() }
            }
        }
        return shuffled(features, labels, rowSize: pixels, names: (0..<pixels).map { "p\($0)" }, sampleShape: [1, side, side],
                        classNames: Array(shapeNames.prefix(classCount)), random: &random)
    }

    /// Whether pixel (x, y) of a size×size box belongs to shape `shape`.
    static func covers(shape: Int, x: Int, y: Int, size: Int) -> Bool {
        let last = size - 1
        switch shape {
        case 0:  // square outline
            return x == 0 || y == 0 || x == last || y == last
        case 1:  // disc
            let center = Double(last) / 2, radius = Double(size) / 2
            let dx = Double(x) - center, dy = Double(y) - center
            return dx * dx + dy * dy <= radius * radius
        case 2:  // cross: the middle row and column, two pixels thick
            let middle = last / 2
            return abs(x - middle) <= 1 || abs(y - middle) <= 1
        default:  // triangle: apex at the top centre, base along the bottom
            let half = Double(y) / Double(max(last, 1)) * Double(last) / 2
            return abs(Double(x) - Double(last) / 2) <= half + 0.5
        }
    }

    private static func shuffled(_ features: [Float], _ labels: [Int32], rowSize: Int, names: [String], sampleShape: [Int],
                                 classNames: [String], random: inout SeededGenerator) -> TabularDataset {
        var order = Array(labels.indices)
        random.shuffle(&order)
        let dataset = TabularDataset(
            features: features, rows: labels.count, featureCount: rowSize, featureNames: names, sampleShape: sampleShape,
            task: .classification, classes: classNames, classIndices: labels, targetValues: [], targetCount: classNames.count)
        return dataset.subset(order)
    }
}
