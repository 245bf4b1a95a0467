import Foundation

/// Reads a CSV file with a header row into a `TabularDataset`.
///
/// Every column but the target is a numeric feature. The bytes are parsed in place: no line or
/// cell becomes a String except header names and text labels, so a file needs little more memory
/// than its features as Float32.
public enum CSVParser {
    /// The most distinct integer targets inference still reads as class labels.
    public static let maxInferredClassCount = 1000

    /// Parses a CSV file with a header row.
    ///
    /// - Parameters:
    ///   - target: the target column's name; nil means the last column.
    ///   - task: nil infers it: a target with any non-numeric cell is classification, its distinct
    ///     strings the classes in sorted order; a numeric target of integers with at most
    ///     `maxInferredClassCount` distinct values is classification, its classes the values in
    ///     numeric order written as integers (`"0"`, `"1"` … `"9"`); anything else is regression.
    public static func parse(contentsOf url: URL, target: String? = nil, task: LearningTask? = nil) throws(DatasetError) -> TabularDataset {
        let data: Data
        do {
            // Mapped, so a large file is not copied into memory before parsing.
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw DatasetError("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try parse(data: data, target: target, task: task)
    }

    /// Parses CSV bytes with a header row; see `parse(contentsOf:target:task:)`.
    public static func parse(data: Data, target: String? = nil, task: LearningTask? = nil) throws(DatasetError) -> TabularDataset {
        let result = data.withUnsafeBytes { raw in
            Result { () throws(DatasetError) in
                var reader = CSVTableReader(bytes: raw.bindMemory(to: UInt8.self), target: target, task: task)
                return try reader.read()
            }
        }
        return try result.get()
    }
}

/// One parse: the header, then every record straight into the feature array.
private struct CSVTableReader {
    var lexer: CSVLexer
    let requestedTarget: String?
    let requestedTask: LearningTask?
    /// The current record's cells, reused from record to record.
    var cells: [CSVCell] = []
    var columnNames: [String] = []
    /// Data rows read so far; the record being read is `row + 1`.
    var row = 0

    init(bytes: UnsafeBufferPointer<UInt8>, target: String?, task: LearningTask?) {
        lexer = CSVLexer(bytes: bytes)
        requestedTarget = target
        requestedTask = task
    }

    /// The first cell of the target that is not a number, and the first non-finite one.
    struct TargetExample { var row: Int; var line: Int; var cell: CSVCell }

    mutating func read() throws(DatasetError) -> TabularDataset {
        guard let headerLine = try nextRecord() else {
            throw DatasetError("the file is empty; expected a header row, then one row per sample")
        }
        try readHeader(line: headerLine)
        let targetColumn = try targetColumnIndex()
        let columnCount = columnNames.count
        let featureCount = columnCount - 1
        guard featureCount > 0 else {
            throw DatasetError("the file has only the target column '\(columnNames[targetColumn])'; it needs at least one feature column")
        }

        // A row takes at least two bytes per cell (a digit and a separator), which bounds the
        // guess when the file holds many blank lines.
        let rowEstimate = min(lexer.remainingLineCount() + 1, lexer.bytes.count / (2 * columnCount) + 1)
        var features: [Float] = []
        features.reserveCapacity(rowEstimate * featureCount)
        var targetCells: [CSVCell] = []
        targetCells.reserveCapacity(rowEstimate)
        var targetNumbers: [Double] = []
        targetNumbers.reserveCapacity(rowEstimate)
        var firstTextTarget: TargetExample?
        var firstNonFiniteTarget: TargetExample?
        var firstTargetBeyondFloat: TargetExample?

        while let line = try nextRecord() {
            row += 1
            guard cells.count == columnCount else {
                throw DatasetError(
                    "\(location(row, line)) has \(cells.count) \(cells.count == 1 ? "cell" : "cells"), the header has \(columnCount)",
                    row: row)
            }
            for column in 0..<columnCount {
                let cell = cells[column]
                if cell.isEmpty { throw DatasetError("\(location(row, line)), column '\(columnNames[column])' is empty", row: row, column: columnNames[column]) }
                if column == targetColumn {
                    // Targets are read as Double so integer labels stay exact; text and
                    // non-finite cells are noted, and judged once the task is known.
                    switch DecimalParser.double(lexer.rawBytes(of: cell)) {
                    case .number(let value):
                        if !Float(value).isFinite && firstTargetBeyondFloat == nil {
                            firstTargetBeyondFloat = TargetExample(row: row, line: line, cell: cell)
                        }
                        targetNumbers.append(value)
                    case .notFinite, .outOfRange:
                        if firstNonFiniteTarget == nil { firstNonFiniteTarget = TargetExample(row: row, line: line, cell: cell) }
                        targetNumbers.append(.nan)
                    case .notANumber:
                        guard lexer.text(of: cell) != nil else { throw invalidUTF8(line: line, column: column) }
                        if firstTextTarget == nil { firstTextTarget = TargetExample(row: row, line: line, cell: cell) }
                        targetNumbers.append(.nan)
                    }
                    targetCells.append(cell)
                    continue
                }
                switch DecimalParser.float(lexer.rawBytes(of: cell)) {
                case .number(let value):
                    features.append(value)
                case .notFinite:
                    throw cellError(line: line, column: column, cell: cell, "is not finite; NaN and infinite values are not allowed")
                case .outOfRange:
                    throw cellError(line: line, column: column, cell: cell, "is beyond the range of float32")
                case .notANumber:
                    guard lexer.text(of: cell) != nil else { throw invalidUTF8(line: line, column: column) }
                    throw cellError(line: line, column: column, cell: cell, "is not a number; every column but the target must be numeric")
                }
            }
        }
        guard row > 0 else { throw DatasetError("the file has a header but no data rows") }

        let targetName = columnNames[targetColumn]
        // Regression until the target says otherwise; `setClasses` turns it into classification.
        var dataset = TabularDataset(
            features: features, rows: row, featureCount: featureCount,
            featureNames: columnNames.enumerated().filter { $0.offset != targetColumn }.map(\.element),
            task: .regression, classes: nil, classIndices: [], targetValues: [Float](repeating: 0, count: row), targetCount: 1,
            targetName: targetName)

        if let text = firstTextTarget {
            guard requestedTask != .regression else {
                throw DatasetError(
                    "\(location(text.row, text.line)), column '\(targetName)': '\(lexer.preview(of: text.cell))' is not a number; a regression target must be numeric",
                    row: text.row, column: targetName)
            }
            let labels = targetCells.map { lexer.text(of: $0)! }  // checked while reading
            let classes = Set(labels).sorted()
            let indexOfClass = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($0.element, Int32($0.offset)) })
            dataset.setClasses(classes, indices: labels.map { indexOfClass[$0]! })
            return dataset
        }
        if let nonFinite = firstNonFiniteTarget {
            throw DatasetError(
                "\(location(nonFinite.row, nonFinite.line)), column '\(targetName)': '\(lexer.preview(of: nonFinite.cell))' is not finite; NaN and infinite values are not allowed",
                row: nonFinite.row, column: targetName)
        }

        let task = requestedTask ?? (TargetInference.looksLikeClassLabels(targetNumbers) ? .classification : .regression)
        switch task {
        case .classification:
            // `+ 0` turns -0 into 0, so both spellings are one class.
            let classValues = Set(targetNumbers.map { $0 + 0 }).sorted()
            let indexOfClass = Dictionary(uniqueKeysWithValues: classValues.enumerated().map { ($0.element, Int32($0.offset)) })
            dataset.setClasses(classValues.map(TargetInference.className), indices: targetNumbers.map { indexOfClass[$0 + 0]! })
        case .regression:
            if let tooLarge = firstTargetBeyondFloat {
                throw DatasetError(
                    "\(location(tooLarge.row, tooLarge.line)), column '\(targetName)': '\(lexer.preview(of: tooLarge.cell))' is beyond the range of float32",
                    row: tooLarge.row, column: targetName)
            }
            // Read again as Float: rounding decimal → Double → Float could differ from decimal → Float.
            for (index, cell) in targetCells.enumerated() {
                guard case .number(let value) = DecimalParser.float(lexer.rawBytes(of: cell)) else { continue }
                dataset.targetValues[index] = value
            }
        }
        return dataset
    }

    private mutating func nextRecord() throws(DatasetError) -> Int? {
        let startLine = lexer.line
        do {
            return try lexer.nextRecord(into: &cells)
        } catch {
            throw describe(error, startLine: startLine)
        }
    }

    /// Names the record (header or row) and the column of a quoting mistake.
    private func describe(_ malformation: CSVLexer.Malformation, startLine: Int) -> DatasetError {
        let isHeader = columnNames.isEmpty
        let recordRow = isHeader ? nil : row + 1
        let record = isHeader ? "the header (line \(startLine))" : "row \(row + 1) (line \(startLine))"
        func locate(_ cell: Int) -> (String, String?) {
            guard cell < columnNames.count else { return ("\(record), cell \(cell + 1)", nil) }
            return ("\(record), column '\(columnNames[cell])'", columnNames[cell])
        }
        switch malformation {
        case .unclosedQuote(let cell):
            let (place, column) = locate(cell)
            return DatasetError("\(place): a quoted cell is never closed", row: recordRow, column: column)
        case .textAfterClosingQuote(let cell):
            let (place, column) = locate(cell)
            return DatasetError(
                "\(place): text follows the closing quote of a quoted cell (write a quote inside quotes as \"\")",
                row: recordRow, column: column)
        }
    }

    private mutating func readHeader(line: Int) throws(DatasetError) {
        var names: [String] = []
        var columnOfName: [String: Int] = [:]
        for (index, cell) in cells.enumerated() {
            guard let name = lexer.text(of: cell) else {
                throw DatasetError("the header (line \(line)) is not valid UTF-8 in column \(index + 1)")
            }
            guard !name.isEmpty else {
                throw DatasetError("column \(index + 1) of the header (line \(line)) has no name; every column needs one")
            }
            if let earlier = columnOfName[name] {
                throw DatasetError("the header names column '\(name)' twice (columns \(earlier + 1) and \(index + 1))", column: name)
            }
            columnOfName[name] = index
            names.append(name)
        }
        columnNames = names
    }

    private func targetColumnIndex() throws(DatasetError) -> Int {
        guard let target = requestedTarget else { return columnNames.count - 1 }
        if let index = columnNames.firstIndex(of: target) { return index }
        let shown = columnNames.prefix(20).map { "'\($0)'" }.joined(separator: ", ")
        let more = columnNames.count > 20 ? " … (\(columnNames.count) columns)" : ""
        throw DatasetError("there is no column '\(target)' for the target; the columns are \(shown)\(more)", column: target)
    }

    /// "row 17 (line 18)": the data row, and the line of the file it starts on.
    private func location(_ row: Int, _ line: Int) -> String { "row \(row) (line \(line))" }

    private func cellError(line: Int, column: Int, cell: CSVCell, _ problem: String) -> DatasetError {
        DatasetError("\(location(row, line)), column '\(columnNames[column])': '\(lexer.preview(of: cell))' \(problem)",
                     row: row, column: columnNames[column])
    }

    private func invalidUTF8(line: Int, column: Int) -> DatasetError {
        DatasetError("\(location(row, line)), column '\(columnNames[column])' is not valid UTF-8", row: row, column: columnNames[column])
    }
}

extension TabularDataset {
    /// Makes this a classification dataset with these classes and per-row class indices.
    fileprivate mutating func setClasses(_ classes: [String], indices: [Int32]) {
        task = .classification
        self.classes = classes
        classIndices = indices
        targetValues = []
        targetCount = classes.count
    }
}
