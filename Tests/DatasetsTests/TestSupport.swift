import Datasets
import Foundation

/// The real datasets of `shared/datasets/`: `DESCENT_DATASETS_DIR` when set, otherwise the
/// `shared/datasets` folder beside the package root.
enum SharedDatasets {
    static var directory: URL {
        if let path = ProcessInfo.processInfo.environment["DESCENT_DATASETS_DIR"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        // This file is <package>/Tests/DatasetsTests/TestSupport.swift.
        let packageRoot = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/datasets", isDirectory: true)
    }

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
}

/// Parses CSV text.
func parseCSV(_ text: String, target: String? = nil, task: LearningTask? = nil) throws(DatasetError) -> TabularDataset {
    try CSVParser.parse(data: Data(text.utf8), target: target, task: task)
}

/// Parses CSV bytes.
func parseCSV(bytes: [UInt8], target: String? = nil, task: LearningTask? = nil) throws(DatasetError) -> TabularDataset {
    try CSVParser.parse(data: Data(bytes), target: target, task: task)
}

/// A small dataset with `counts[c]` rows of class c; feature 0 is the row index, feature 1 the class.
func classificationDataset(classCounts counts: [Int]) -> TabularDataset {
    var labels: [Int32] = []
    for (label, count) in counts.enumerated() { labels += Array(repeating: Int32(label), count: count) }
    let features = labels.enumerated().flatMap { [Float($0.offset), Float($0.element)] }
    return TabularDataset(
        features: features, rows: labels.count, featureCount: 2, featureNames: ["index", "label"],
        task: .classification, classes: counts.indices.map(String.init), classIndices: labels,
        targetValues: [], targetCount: counts.count)
}

/// A regression dataset of `rows` rows, one feature (the row index) and target = 2 · index.
func regressionDataset(rows: Int) -> TabularDataset {
    TabularDataset(
        features: (0..<rows).map(Float.init), rows: rows, featureCount: 1, featureNames: ["x"],
        task: .regression, classes: nil, classIndices: [], targetValues: (0..<rows).map { 2 * Float($0) }, targetCount: 1)
}
