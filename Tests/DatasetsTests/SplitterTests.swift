import Datasets
import Testing

@Suite("Splitter")
struct SplitterTests {
    @Test("part sizes follow the fractions")
    func sizes() {
        let dataset = classificationDataset(classCounts: [500, 300, 200])
        let split = Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.1, seed: 0)
        #expect(split.validation.count == 200)
        #expect(split.test.count == 100)
        #expect(split.train.count == 700)
    }

    @Test("the parts are disjoint and together cover every row once")
    func coverage() {
        let dataset = classificationDataset(classCounts: [37, 51, 12, 3])
        let split = Splitter.split(dataset, validationFraction: 0.15, testFraction: 0.25, seed: 1)
        let all = split.train + split.validation + split.test
        #expect(all.count == dataset.rows)
        #expect(Set(all) == Set(0..<dataset.rows))
        #expect(split.train == split.train.sorted())
    }

    @Test("each class is split in proportion")
    func stratified() {
        let dataset = classificationDataset(classCounts: [600, 300, 100])
        let split = Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.2, seed: 2)
        func count(_ rows: [Int], _ label: Int32) -> Int { rows.filter { dataset.classIndices[$0] == label }.count }
        #expect([count(split.test, 0), count(split.test, 1), count(split.test, 2)] == [120, 60, 20])
        #expect([count(split.validation, 0), count(split.validation, 1), count(split.validation, 2)] == [120, 60, 20])
    }

    @Test("rounding is shared out so the parts add up to the fraction of all rows")
    func largestRemainder() {
        // 0.1 of each class is 0.5 rows; of all rows, 2.
        let dataset = classificationDataset(classCounts: [5, 5, 5, 5])
        let split = Splitter.split(dataset, validationFraction: 0, testFraction: 0.1, seed: 3)
        #expect(split.test.count == 2)
    }

    @Test("every class with at least two rows keeps one in train")
    func smallClasses() {
        let dataset = classificationDataset(classCounts: [2, 2, 1, 40])
        let split = Splitter.split(dataset, validationFraction: 0.45, testFraction: 0.45, seed: 4)
        for label in Int32(0)..<4 {
            #expect(split.train.contains { dataset.classIndices[$0] == label }, "class \(label)")
        }
    }

    @Test("the same seed gives the same split, another seed another")
    func deterministic() {
        let dataset = classificationDataset(classCounts: [100, 100])
        let first = Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.2, seed: 5)
        #expect(Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.2, seed: 5) == first)
        #expect(Splitter.split(dataset, validationFraction: 0.2, testFraction: 0.2, seed: 6) != first)
    }

    @Test("regression rows are split as one group")
    func regression() {
        let dataset = regressionDataset(rows: 101)
        let split = Splitter.split(dataset, validationFraction: 0.3, testFraction: 0, seed: 7)
        #expect(split.validation.count == 30)
        #expect(split.test.isEmpty)
        #expect(split.train.count == 71)
        #expect(Set(split.train).isDisjoint(with: split.validation))
    }

    @Test("digits splits 80/20 with every digit in both parts")
    func digits() throws {
        let digits = try CSVParser.parse(contentsOf: SharedDatasets.url("digits.csv"), target: nil, task: nil)
        let split = Splitter.split(digits, validationFraction: 0, testFraction: 0.2, seed: 0)
        #expect(split.test.count == 359)
        #expect(split.train.count == 1438)
        #expect(Set(split.test.map { digits.classIndices[$0] }).count == 10)
    }
}
