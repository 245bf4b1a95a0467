import Tensors

/// Row indices of a dataset for training, validation and test; each list ascending.
public struct DatasetSplit: Sendable, Equatable {
    public var train: [Int]
    public var validation: [Int]
    public var test: [Int]

    public init(train: [Int], validation: [Int], test: [Int]) {
        self.train = train
        self.validation = validation
        self.test = test
    }
}

/// Splits a dataset's rows into train, validation and test.
public enum Splitter {
    /// A seeded split by fractions of the rows.
    ///
    /// Classification splits each class in proportion (stratified), so every part sees the class
    /// balance of the whole; each class keeps at least one row in train. The sizes of the parts
    /// are `validationFraction` and `testFraction` of all rows, rounded; the per-class shares are
    /// apportioned by largest remainder so the parts add up. Regression splits all rows at once.
    public static func split(_ dataset: TabularDataset, validationFraction: Double, testFraction: Double, seed: UInt64) -> DatasetSplit {
        precondition(validationFraction >= 0 && testFraction >= 0, "fractions must not be negative")
        precondition(validationFraction + testFraction < 1, "validation and test fractions must leave rows for training")

        var groups: [[Int]]
        switch dataset.task {
        case .classification:
            groups = Array(repeating: [], count: dataset.targetCount)
            for (row, classIndex) in dataset.classIndices.enumerated() { groups[Int(classIndex)].append(row) }
        case .regression:
            groups = [Array(0..<dataset.rows)]
        }
        let sizes = groups.map(\.count)
        let testCounts = apportion(fraction: testFraction, of: sizes)
        let validationCounts = apportion(fraction: validationFraction, of: sizes)

        var random = SeededGenerator(seed: seed, purpose: "split")
        var split = DatasetSplit(train: [], validation: [], test: [])
        for (index, var rows) in groups.enumerated() where !rows.isEmpty {
            random.shuffle(&rows)
            // Keep one row for training, taking it back from validation first.
            var validationCount = validationCounts[index]
            var testCount = testCounts[index]
            while validationCount + testCount > rows.count - 1 {
                if validationCount > 0 { validationCount -= 1 } else { testCount -= 1 }
            }
            split.test += rows[0..<testCount]
            split.validation += rows[testCount..<(testCount + validationCount)]
            split.train += rows[(testCount + validationCount)...]
        }
        split.train.sort()
        split.validation.sort()
        split.test.sort()
        return split
    }

    /// Whole-row counts per group that add up to `fraction` of all rows (rounded), each group
    /// getting its proportional share rounded down, plus one for the largest remainders.
    static func apportion(fraction: Double, of sizes: [Int]) -> [Int] {
        let quotas = sizes.map { Double($0) * fraction }
        var counts = quotas.map { Int($0.rounded(.down)) }
        let total = Int((Double(sizes.reduce(0, +)) * fraction).rounded())
        let leftover = max(0, total - counts.reduce(0, +))
        let remainders = quotas.indices.map { quotas[$0] - Double(counts[$0]) }
        let byRemainder = quotas.indices.sorted { remainders[$0] != remainders[$1] ? remainders[$0] > remainders[$1] : $0 < $1 }
        for index in byRemainder.prefix(leftover) where counts[index] < sizes[index] { counts[index] += 1 }
        return counts
    }
}
