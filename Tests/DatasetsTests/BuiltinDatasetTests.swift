import Datasets
import Foundation
import Testing

@Suite("BuiltinDataset")
struct BuiltinDatasetTests {
    @Test("the same seed gives the same dataset, another seed another", arguments: BuiltinDataset.allCases)
    func deterministic(generator: BuiltinDataset) {
        let options = BuiltinDatasetOptions(samples: 300, noise: 0.1, classes: 3, seed: 7)
        #expect(generator.generate(options) == generator.generate(options))
        var other = options
        other.seed = 8
        #expect(generator.generate(options).features != generator.generate(other).features)
    }

    @Test("every point generator makes the requested rows of two features x0 and x1",
          arguments: [BuiltinDataset.spirals, .moons, .circles, .blobs, .xor])
    func shape(generator: BuiltinDataset) {
        let dataset = generator.generate(BuiltinDatasetOptions(samples: 301, classes: 4, seed: 1))
        let classCount = generator.fixedClassCount ?? 4
        #expect(dataset.rows == 301)
        #expect(dataset.featureCount == 2)
        #expect(dataset.features.count == 602)
        #expect(dataset.featureNames == ["x0", "x1"])
        #expect(dataset.sampleShape == [2])
        #expect(dataset.task == .classification)
        #expect(dataset.classes == (0..<classCount).map(String.init))
        #expect(dataset.targetCount == classCount)
        #expect(dataset.classIndices.count == 301)
        #expect(dataset.classIndices.allSatisfy { (0..<Int32(classCount)).contains($0) })
        #expect(dataset.features.allSatisfy { $0.isFinite })
    }

    @Test("moons, circles and xor have two classes; spirals and blobs take the option")
    func fixedClassCount() {
        #expect(BuiltinDataset.moons.fixedClassCount == 2)
        #expect(BuiltinDataset.circles.fixedClassCount == 2)
        #expect(BuiltinDataset.xor.fixedClassCount == 2)
        #expect(BuiltinDataset.spirals.fixedClassCount == nil)
        #expect(BuiltinDataset.blobs.fixedClassCount == nil)
        #expect(BuiltinDataset.spirals.generate(BuiltinDatasetOptions(samples: 50, classes: 5)).classes?.count == 5)
    }

    @Test("the default options are the API's")
    func defaults() {
        #expect(BuiltinDatasetOptions() == BuiltinDatasetOptions(samples: 2000, noise: 0.1, classes: 3, seed: 0))
        #expect(BuiltinDataset(rawValue: "spirals") == .spirals)
    }

    @Test("classes are balanced", arguments: [BuiltinDataset.spirals, .moons, .circles, .blobs])
    func balanced(generator: BuiltinDataset) {
        let dataset = generator.generate(BuiltinDatasetOptions(samples: 1001, classes: 3, seed: 2))
        let counts = (0..<dataset.targetCount).map { label in dataset.classIndices.filter { $0 == label }.count }
        #expect(counts.max()! - counts.min()! <= 1, "\(counts)")
    }

    @Test("xor classes are about even")
    func xorBalance() {
        let dataset = BuiltinDataset.xor.generate(BuiltinDatasetOptions(samples: 4000, seed: 3))
        let ones = dataset.classIndices.filter { $0 == 1 }.count
        #expect(abs(ones - 2000) < 200)
    }

    @Test("rows come shuffled, not class by class")
    func shuffled() {
        let dataset = BuiltinDataset.moons.generate(BuiltinDatasetOptions(samples: 200, seed: 4))
        #expect(dataset.classIndices.prefix(100).contains(1))
    }

    @Test("noise-free moons lie on their two half circles")
    func moons() {
        let dataset = BuiltinDataset.moons.generate(BuiltinDatasetOptions(samples: 500, noise: 0, seed: 5))
        for row in 0..<dataset.rows {
            let x = Double(dataset.features[2 * row]), y = Double(dataset.features[2 * row + 1])
            if dataset.classIndices[row] == 0 {
                // Upper half of the unit circle around (0, 0).
                #expect(abs((x * x + y * y).squareRoot() - 1) < 1e-5)
                #expect(y >= -1e-6)
            } else {
                // Lower half of the unit circle around (1, 0.5).
                #expect(abs(((x - 1) * (x - 1) + (y - 0.5) * (y - 0.5)).squareRoot() - 1) < 1e-5)
                #expect(y <= 0.5 + 1e-6)
            }
        }
    }

    @Test("noise-free circles have radii 1 and 0.5")
    func circles() {
        let dataset = BuiltinDataset.circles.generate(BuiltinDatasetOptions(samples: 400, noise: 0, seed: 6))
        for row in 0..<dataset.rows {
            let radius = Double(dataset.features[2 * row]).hypot(Double(dataset.features[2 * row + 1]))
            #expect(abs(radius - (dataset.classIndices[row] == 0 ? 1 : 0.5)) < 1e-5)
        }
    }

    @Test("noise-free spiral arms stay within the unit disc and start at the origin")
    func spirals() {
        let dataset = BuiltinDataset.spirals.generate(BuiltinDatasetOptions(samples: 300, noise: 0, classes: 3, seed: 7))
        let radii = (0..<dataset.rows).map { Double(dataset.features[2 * $0]).hypot(Double(dataset.features[2 * $0 + 1])) }
        #expect(radii.allSatisfy { $0 <= 1 + 1e-6 })
        #expect(radii.filter { $0 < 1e-9 }.count == 3)  // each arm's first point
    }

    @Test("noise-free xor labels follow the sign of x0 · x1")
    func xor() {
        let dataset = BuiltinDataset.xor.generate(BuiltinDatasetOptions(samples: 500, noise: 0, seed: 8))
        for row in 0..<dataset.rows {
            let x0 = dataset.features[2 * row], x1 = dataset.features[2 * row + 1]
            #expect(abs(x0) <= 1 && abs(x1) <= 1)
            #expect(dataset.classIndices[row] == (x0 * x1 > 0 ? 1 : 0))
        }
    }

    @Test("blob points scatter around their centers with the noise as standard deviation")
    func blobs() {
        let dataset = BuiltinDataset.blobs.generate(BuiltinDatasetOptions(samples: 6000, noise: 0.2, classes: 2, seed: 9))
        for label in Int32(0)...1 {
            let rows = (0..<dataset.rows).filter { dataset.classIndices[$0] == label }
            let xs = rows.map { Double(dataset.features[2 * $0]) }
            let mean = xs.reduce(0, +) / Double(xs.count)
            let std = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)).squareRoot()
            #expect(abs(mean) <= 1.05)
            #expect(abs(std - 0.2) < 0.02)
        }
    }
}

extension Double {
    fileprivate func hypot(_ other: Double) -> Double { (self * self + other * other).squareRoot() }

    @Test("sine sequences are 32 steps of one feature, one class per frequency, balanced")
    func sineSequences() {
        let dataset = BuiltinDataset.sine_sequences.generate(BuiltinDatasetOptions(samples: 300, noise: 0, classes: 3, seed: 1))
        #expect(dataset.sampleShape == [32, 1] && dataset.featureCount == 32 && dataset.rows == 300)
        #expect(dataset.classes == ["1_cycles", "2_cycles", "3_cycles"])
        #expect((0..<3).map { label in dataset.classIndices.filter { $0 == Int32(label) }.count } == [100, 100, 100])
        // Without noise a class-k sequence changes sign about 2(k+1) times.
        let row = dataset.classIndices.firstIndex(of: 2)!
        let values = Array(dataset.features[(row * 32)..<((row + 1) * 32)])
        let signChanges = zip(values, values.dropFirst()).filter { ($0 < 0) != ($1 < 0) }.count
        #expect((5...7).contains(signChanges))
    }

    @Test("shape images are 16×16 grey images of up to four shapes")
    func shapeImages() {
        let dataset = BuiltinDataset.shapes_images.generate(BuiltinDatasetOptions(samples: 40, noise: 0, classes: 4, seed: 1))
        #expect(dataset.sampleShape == [1, 16, 16] && dataset.featureCount == 256)
        #expect(dataset.classes == ["square", "disc", "cross", "triangle"])
        #expect(dataset.features.allSatisfy { $0 == 0 || $0 == 1 })
        for row in 0..<dataset.rows {
            let lit = dataset.features[(row * 256)..<((row + 1) * 256)].filter { $0 == 1 }.count
            #expect(lit >= 9, "every image shows its shape")
        }
        #expect(BuiltinDataset.shapes_images.maximumClassCount == 4)
    }
}
