import Datasets
import Testing

@Suite("TabularDataset")
struct TabularDatasetTests {
    @Test("a subset picks rows in the given order, features and classes together")
    func classificationSubset() {
        let dataset = classificationDataset(classCounts: [2, 3])
        let subset = dataset.subset([4, 0, 2, 4])
        #expect(subset.rows == 4)
        #expect(subset.features == [4, 1, 0, 0, 2, 1, 4, 1])
        #expect(subset.classIndices == [1, 0, 1, 1])
        #expect(subset.classes == dataset.classes)
        #expect(subset.featureNames == dataset.featureNames)
    }

    @Test("a subset of a regression dataset carries the target values")
    func regressionSubset() {
        let subset = regressionDataset(rows: 10).subset([9, 3])
        #expect(subset.features == [9, 3])
        #expect(subset.targetValues == [18, 6])
        #expect(subset.classIndices.isEmpty)
    }

    @Test("an empty subset has no rows")
    func emptySubset() {
        let subset = regressionDataset(rows: 3).subset([])
        #expect(subset.rows == 0)
        #expect(subset.features.isEmpty)
        #expect(subset.targetValues.isEmpty)
    }

    @Test("the task's raw values are the API's words")
    func taskNames() {
        #expect(LearningTask.classification.rawValue == "classification")
        #expect(LearningTask(rawValue: "regression") == .regression)
    }
}
