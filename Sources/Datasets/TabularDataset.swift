/// What a dataset's target asks the model to do.
public enum LearningTask: String, Codable, Sendable {
    case classification, regression
}

/// Samples in memory: features row-major (`rows × featureCount`), plus targets.
///
/// Classification keeps one class index per row (`classIndices`, into `classes`);
/// regression keeps `targetCount` values per row (`targetValues`). The other array is empty.
public struct TabularDataset: Sendable, Equatable {
    /// `rows × featureCount` values, row-major.
    public var features: [Float]
    public var rows: Int
    public var featureCount: Int
    /// A CSV's column names, one per feature; empty when the features are positions within a sample
    /// (IDX and NPY arrays, which `sampleShape` describes): 20 million `x…` names would be 283 MB.
    public var featureNames: [String]
    /// The shape of one sample: `[featureCount]` for CSV, `[channels, height, width]` for images.
    public var sampleShape: [Int]
    public var task: LearningTask
    /// Classification: the labels, in the order of the model's outputs. Nil for regression.
    public var classes: [String]?
    /// Classification: per row, an index into `classes`. Empty for regression.
    public var classIndices: [Int32]
    /// Regression: `rows × targetCount` values, row-major. Empty for classification.
    public var targetValues: [Float]
    /// Regression: values per row; classification: `classes.count` (the model's output width).
    public var targetCount: Int
    /// The column the targets came from (CSV), so the default "last column" can be recorded.
    public var targetName: String?

    public init(
        features: [Float], rows: Int, featureCount: Int, featureNames: [String], sampleShape: [Int]? = nil,
        task: LearningTask, classes: [String]?, classIndices: [Int32], targetValues: [Float], targetCount: Int,
        targetName: String? = nil
    ) {
        precondition(features.count == rows * featureCount, "\(features.count) features for \(rows) × \(featureCount)")
        precondition(featureNames.isEmpty || featureNames.count == featureCount, "\(featureNames.count) names for \(featureCount) features")
        switch task {
        case .classification:
            precondition(classIndices.count == rows && targetValues.isEmpty, "classification keeps one class index per row")
            precondition(classes?.count == targetCount, "targetCount must be the number of classes")
        case .regression:
            precondition(targetValues.count == rows * targetCount && classIndices.isEmpty, "regression keeps targetCount values per row")
        }
        self.features = features
        self.rows = rows
        self.featureCount = featureCount
        self.featureNames = featureNames
        self.sampleShape = sampleShape ?? [featureCount]
        self.task = task
        self.classes = classes
        self.classIndices = classIndices
        self.targetValues = targetValues
        self.targetCount = targetCount
        self.targetName = targetName
    }

    /// The rows at `indices`, in that order (an index may repeat).
    public func subset(_ indices: [Int]) -> TabularDataset {
        var picked = self
        picked.rows = indices.count
        picked.features = Self.gather(features, rowSize: featureCount, rows: indices)
        switch task {
        case .classification:
            picked.classIndices = indices.map { classIndices[$0] }
        case .regression:
            picked.targetValues = Self.gather(targetValues, rowSize: targetCount, rows: indices)
        }
        return picked
    }

    /// Copies the rows at `indices` of a row-major `source` into a new array.
    private static func gather(_ source: [Float], rowSize: Int, rows indices: [Int]) -> [Float] {
        guard rowSize > 0 else { return [] }
        let rowCount = source.count / rowSize
        return [Float](unsafeUninitializedCapacity: indices.count * rowSize) { destination, initialized in
            source.withUnsafeBufferPointer { source in
                for (position, row) in indices.enumerated() {
                    precondition(row >= 0 && row < rowCount, "row \(row) out of range 0..<\(rowCount)")
                    let from = source.baseAddress! + row * rowSize
                    (destination.baseAddress! + position * rowSize).initialize(from: from, count: rowSize)
                }
            }
            initialized = indices.count * rowSize
        }
    }
}
