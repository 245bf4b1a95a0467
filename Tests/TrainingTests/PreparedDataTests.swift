import Datasets
import Testing
@testable import Training

@Suite("PreparedData")
struct PreparedDataTests {
    /// Blobs far from the origin with a large spread, so statistics of different row sets differ clearly.
    let dataset: TabularDataset = {
        var data = BuiltinDataset.blobs.generate(BuiltinDatasetOptions(samples: 1000, noise: 0.5, classes: 4, seed: 11))
        for i in data.features.indices { data.features[i] = data.features[i] * 10 + (i % 2 == 0 ? 50 : -20) }
        return data
    }()

    func spec(validation: Double = 0.2, test: Double = 0.1, seed: Int = 5, standardize: Bool = true) throws -> JobSpec {
        try JobSpec.parse(json("""
        {"dataset": {"id": "ds_x"}, "validation": {"split": \(validation)}, "test": {"split": \(test)},
         "preprocessing": {"standardize": \(standardize)},
         "model": {"layers": [{"type": "dense", "units": 4}]}, "training": {"seed": \(seed)}}
        """)).resolved(for: DatasetSummary(dataset))
    }

    @Test func standardizationIsFittedOnTheTrainingRowsOnly() throws {
        let spec = try spec()
        let data = PreparedData(spec: spec, dataset: dataset)
        let split = Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.1, seed: 5)
        let expected = Standardization.fit(dataset, rows: split.train)
        #expect(data.standardization == expected)
        // Not the statistics of all rows.
        let everything = Standardization.fit(dataset, rows: Array(0..<dataset.rows))
        #expect(data.standardization != everything)

        // Every split is standardized with the training statistics.
        func standardized(_ rows: [Int]) -> [Float] {
            var features = dataset.subset(rows).features
            expected.apply(to: &features, featureCount: 2)
            return features
        }
        #expect(data.train.features == standardized(split.train))
        #expect(data.validation?.features == standardized(split.validation))
        #expect(data.test?.features == standardized(split.test))
        #expect(data.validation?.classIndices == split.validation.map { dataset.classIndices[$0] })

        // The training part has mean 0 and deviation 1 per feature; the held-out parts only roughly.
        for feature in 0..<2 {
            let column = stride(from: feature, to: data.train.features.count, by: 2).map { Double(data.train.features[$0]) }
            let mean = column.reduce(0, +) / Double(column.count)
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(column.count)
            #expect(abs(mean) < 1e-4)
            #expect(abs(variance - 1) < 1e-3)
        }
    }

    @Test func theHeldOutSetsFollowTheFractions() throws {
        for (validation, test) in [(0.2, 0.1), (0.25, 0.0), (0.0, 0.3), (0.1, 0.15)] {
            let data = PreparedData(spec: try spec(validation: validation, test: test), dataset: dataset)
            let validationRows = Int((Double(dataset.rows) * validation).rounded())
            let testRows = Int((Double(dataset.rows) * test).rounded())
            #expect((data.validation?.rows ?? 0) == validationRows, "validation \(validation)")
            #expect((data.test?.rows ?? 0) == testRows, "test \(test)")
            #expect(data.train.rows == dataset.rows - validationRows - testRows)
            // An empty part is absent, not an empty dataset.
            #expect((data.validation == nil) == (validationRows == 0))
            #expect((data.test == nil) == (testRows == 0))
        }
    }

    @Test func theSameSeedGivesTheSameDataAndAnotherSeedOtherRows() throws {
        let first = PreparedData(spec: try spec(seed: 5), dataset: dataset)
        let second = PreparedData(spec: try spec(seed: 5), dataset: dataset)
        #expect(first.train == second.train)
        #expect(first.validation == second.validation)
        #expect(first.test == second.test)
        #expect(first.standardization == second.standardization)

        let other = PreparedData(spec: try spec(seed: 6), dataset: dataset)
        #expect(other.train.rows == first.train.rows)
        #expect(other.validation?.features != first.validation?.features)
    }

    @Test func withoutStandardizationTheFeaturesAreLeftAsTheyAre() throws {
        let data = PreparedData(spec: try spec(standardize: false), dataset: dataset)
        #expect(data.standardization == nil)
        let split = Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.1, seed: 5)
        #expect(data.train.features == dataset.subset(split.train).features)
        #expect(data.test?.features == dataset.subset(split.test).features)
    }

    @Test func separateHeldOutDatasetsAreUsedInsteadOfASplit() throws {
        let validationSet = BuiltinDataset.blobs.generate(BuiltinDatasetOptions(samples: 40, noise: 0.5, classes: 4, seed: 12))
        let spec = try JobSpec.parse(json("""
        {"dataset": {"id": "ds_x"}, "validation": {"dataset": "ds_val"},
         "model": {"layers": [{"type": "dense", "units": 4}]}}
        """)).resolved(for: DatasetSummary(dataset))
        let data = PreparedData(spec: spec, dataset: dataset, validationDataset: validationSet)
        #expect(data.train.rows == dataset.rows)
        #expect(data.validation?.rows == 40)
        #expect(data.test == nil)
        var expected = validationSet.features
        Standardization.fit(dataset, rows: Array(0..<dataset.rows)).apply(to: &expected, featureCount: 2)
        #expect(data.validation?.features == expected)
    }
}
