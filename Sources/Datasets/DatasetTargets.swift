/// Targets read from a labels array (an IDX or NPY labels upload, or an NPY's last column).
///
/// The task is inferred as for a CSV target (`CSVParser.parse`): integers with at most
/// `CSVParser.maxInferredClassCount` distinct values are classes, in numeric order written as
/// integers (`"0"` … `"9"`); anything else is regression.
public struct DatasetTargets: Sendable, Equatable {
    public var task: LearningTask
    /// Classification: the labels in output order. Nil for regression.
    public var classes: [String]?
    /// Classification: per sample, an index into `classes`. Empty for regression.
    public var classIndices: [Int32]
    /// Regression: one value per sample. Empty for classification.
    public var values: [Float]
    /// The number of samples.
    public var count: Int

    /// - Parameter task: nil infers it.
    public init(labels: [Double], task: LearningTask? = nil) throws(DatasetError) {
        count = labels.count
        let task = task ?? (TargetInference.looksLikeClassLabels(labels) ? .classification : .regression)
        self.task = task
        switch task {
        case .classification:
            // `+ 0` turns -0 into 0, so both spellings are one class.
            let classValues = Set(labels.map { $0 + 0 }).sorted()
            let indexOfClass = Dictionary(uniqueKeysWithValues: classValues.enumerated().map { ($0.element, Int32($0.offset)) })
            classes = classValues.map(TargetInference.className)
            classIndices = labels.map { indexOfClass[$0 + 0]! }
            values = []
        case .regression:
            var values = [Float]()
            values.reserveCapacity(labels.count)
            for (index, label) in labels.enumerated() {
                let value = Float(label)
                guard value.isFinite else {
                    throw DatasetError("label \(index) (\(label)) is beyond the range of float32", row: index + 1)
                }
                values.append(value)
            }
            classes = nil
            classIndices = []
            self.values = values
        }
    }
}

/// How a numeric target is read as classes or values; shared by CSV and array uploads.
enum TargetInference {
    /// Integers only, and few enough distinct values to be labels.
    static func looksLikeClassLabels(_ values: [Double]) -> Bool {
        var distinct = Set<Double>()
        for value in values {
            guard value == value.rounded(.towardZero), abs(value) < 1e15 else { return false }
            if distinct.insert(value + 0).inserted && distinct.count > CSVParser.maxInferredClassCount { return false }
        }
        return true
    }

    /// `3.0` → "3", `0.5` → "0.5".
    static func className(_ value: Double) -> String {
        value == value.rounded(.towardZero) && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
