import Datasets
import Foundation
import Testing

@Suite("Standardization")
struct StandardizationTests {
    /// Three features: a spread-out one, a shifted one, a constant one.
    let dataset = TabularDataset(
        features: (0..<100).flatMap { (row: Int) -> [Float] in
            let spread: Float = Float(row) * 0.37 - 5
            let shifted: Float = 1000 + Float(row % 7)
            return [spread, shifted, 3.25]
        },
        rows: 100, featureCount: 3, featureNames: ["a", "b", "c"], task: .regression, classes: nil,
        classIndices: [], targetValues: Array(repeating: 0, count: 100), targetCount: 1)

    func column(_ values: [Float], _ feature: Int, rows: [Int]) -> [Double] {
        rows.map { Double(values[$0 * 3 + feature]) }
    }

    @Test("fitted on the training rows, those rows get mean 0 and std 1")
    func meanZeroStdOne() {
        let train = Array(stride(from: 0, to: 100, by: 2))
        let standardization = Standardization.fit(dataset, rows: train)
        var features = dataset.features
        standardization.apply(to: &features, featureCount: 3)
        for feature in 0..<2 {
            let values = column(features, feature, rows: train)
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            #expect(abs(mean) < 1e-5)
            let std = variance.squareRoot()
            #expect(abs(std - 1) < 1e-5)
        }
    }

    @Test("the statistics come from the given rows only")
    func trainOnly() {
        let standardization = Standardization.fit(dataset, rows: [0, 1, 2, 3])
        // Feature a on rows 0…3: -5, -4.63, -4.26, -3.89.
        #expect(abs(standardization.mean[0] - (-4.445)) < 1e-5)
        #expect(abs(standardization.std[0] - 0.37 * Float(1.25).squareRoot()) < 1e-5)
    }

    @Test("a constant feature gets std 1 and maps to exactly 0")
    func constantFeature() {
        let standardization = Standardization.fit(dataset, rows: Array(0..<100))
        #expect(standardization.mean[2] == 3.25)
        #expect(standardization.std[2] == 1)
        var features = dataset.features
        standardization.apply(to: &features, featureCount: 3)
        #expect((0..<100).allSatisfy { features[$0 * 3 + 2] == 0 })
    }

    @Test("a constant feature whose sum rounds still maps to exactly 0")
    func constantUnrepresentable() {
        let constant = TabularDataset(
            features: Array(repeating: 0.1, count: 1797), rows: 1797, featureCount: 1, featureNames: ["x"],
            task: .regression, classes: nil, classIndices: [], targetValues: Array(repeating: 0, count: 1797), targetCount: 1)
        var features = constant.features
        Standardization.fit(constant, rows: Array(0..<1797)).apply(to: &features, featureCount: 1)
        #expect(features.allSatisfy { $0 == 0 })
    }

    @Test("applying to a buffer matches applying to an array")
    func buffer() {
        let standardization = Standardization.fit(dataset, rows: Array(0..<50))
        var array = dataset.features
        standardization.apply(to: &array, featureCount: 3)
        var viaBuffer = dataset.features
        viaBuffer.withUnsafeMutableBufferPointer { standardization.apply(to: $0, featureCount: 3) }
        #expect(array == viaBuffer)
    }

    @Test("no rows give the identity")
    func noRows() {
        let standardization = Standardization.fit(dataset, rows: [])
        #expect(standardization == Standardization(mean: [0, 0, 0], std: [1, 1, 1]))
    }

    @Test("it round-trips through JSON")
    func codable() throws {
        let standardization = Standardization.fit(dataset, rows: Array(0..<100))
        let decoded = try JSONDecoder().decode(Standardization.self, from: JSONEncoder().encode(standardization))
        #expect(decoded == standardization)
    }
}
