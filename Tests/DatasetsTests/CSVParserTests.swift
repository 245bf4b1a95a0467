import Datasets
import Foundation
import Tensors
import Testing

@Suite("CSVParser")
struct CSVParserTests {
    // MARK: Real files

    @Test("digits.csv reads as 1797 rows of 64 features with classes 0 to 9")
    func digits() throws {
        let digits = try CSVParser.parse(contentsOf: SharedDatasets.url("digits.csv"), target: nil, task: nil)
        #expect(digits.rows == 1797)
        #expect(digits.featureCount == 64)
        #expect(digits.features.count == 1797 * 64)
        #expect(digits.sampleShape == [64])
        #expect(digits.featureNames.first == "p0" && digits.featureNames.last == "p63")
        #expect(digits.task == .classification)
        #expect(digits.classes == (0...9).map(String.init))
        #expect(digits.targetCount == 10)
        #expect(digits.targetName == "label")
        #expect(digits.classIndices.count == 1797)
        #expect(digits.targetValues.isEmpty)
        // The file's first row: a zero.
        #expect(Array(digits.features.prefix(8)) == [0, 0, 5, 13, 9, 1, 0, 0])
        #expect(digits.classIndices.first == 0)
        #expect(digits.features.allSatisfy { (0...16).contains($0) })
    }

    @Test("iris species become the classes setosa, versicolor and virginica")
    func iris() throws {
        let iris = try CSVParser.parse(contentsOf: SharedDatasets.url("iris.csv"), target: "species", task: nil)
        #expect(iris.rows == 150)
        #expect(iris.featureCount == 4)
        #expect(iris.featureNames == ["sepal_length", "sepal_width", "petal_length", "petal_width"])
        #expect(iris.classes == ["setosa", "versicolor", "virginica"])
        #expect(Array(iris.features.prefix(4)) == [5.1, 3.5, 1.4, 0.2])
        for label in 0..<3 { #expect(iris.classIndices.filter { $0 == label }.count == 50) }
    }

    @Test("a file that cannot be read is an error naming its path")
    func missingFile() {
        let error = #expect(throws: DatasetError.self) {
            try CSVParser.parse(contentsOf: URL(fileURLWithPath: "/nonexistent/data.csv"), target: nil, task: nil)
        }
        #expect(error?.message.contains("/nonexistent/data.csv") == true)
    }

    // MARK: Targets and tasks

    @Test("string targets become classes in sorted order")
    func stringTargets() throws {
        let dataset = try parseCSV("size,animal\n1,dog\n2,cat\n3,dog\n4,emu\n")
        #expect(dataset.task == .classification)
        #expect(dataset.classes == ["cat", "dog", "emu"])
        #expect(dataset.classIndices == [1, 0, 1, 2])
        #expect(dataset.targetCount == 3)
    }

    @Test("integer targets become classes in numeric order, written as integers")
    func integerTargets() throws {
        let dataset = try parseCSV("x,label\n1,10\n2,2\n3,1.0\n4,2\n5,-0\n")
        #expect(dataset.task == .classification)
        #expect(dataset.classes == ["0", "1", "2", "10"])
        #expect(dataset.classIndices == [3, 2, 1, 2, 0])
    }

    @Test("fractional numeric targets are regression")
    func fractionalTargets() throws {
        let dataset = try parseCSV("x,y\n1,0.5\n2,1.25\n3,-2\n")
        #expect(dataset.task == .regression)
        #expect(dataset.classes == nil)
        #expect(dataset.classIndices.isEmpty)
        #expect(dataset.targetValues == [0.5, 1.25, -2])
        #expect(dataset.targetCount == 1)
    }

    @Test("integer targets with more than 1000 distinct values are regression")
    func manyIntegers() throws {
        let text = "x,y\n" + (0...1000).map { "\($0),\($0 * 3)" }.joined(separator: "\n")
        let dataset = try parseCSV(text)
        #expect(dataset.task == .regression)
        #expect(dataset.targetValues.last == 3000)
        let fewer = try parseCSV("x,y\n" + (0..<1000).map { "\($0),\($0 * 3)" }.joined(separator: "\n"))
        #expect(fewer.task == .classification)
    }

    @Test("an explicit task overrides the inference")
    func explicitTask() throws {
        let regression = try parseCSV("x,y\n1,0\n2,1\n3,1\n", task: .regression)
        #expect(regression.task == .regression)
        #expect(regression.targetValues == [0, 1, 1])
        let classification = try parseCSV("x,y\n1,1.5\n2,0.5\n3,1.5\n", task: .classification)
        #expect(classification.classes == ["0.5", "1.5"])
        #expect(classification.classIndices == [1, 0, 1])
    }

    @Test("a text target when regression is requested is an error naming the row and column")
    func textTargetForRegression() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("x,y\n1,2\n2,high\n", task: .regression) }
        #expect(error?.row == 2)
        #expect(error?.column == "y")
        #expect(error?.message.contains("row 2 (line 3)") == true)
        #expect(error?.message.contains("'high'") == true)
    }

    @Test("the target can be any column, named in the call")
    func namedTarget() throws {
        let dataset = try parseCSV("label,a,b\ncat,1,2\ndog,3,4\n", target: "label")
        #expect(dataset.targetName == "label")
        #expect(dataset.featureNames == ["a", "b"])
        #expect(dataset.features == [1, 2, 3, 4])
        #expect(dataset.classes == ["cat", "dog"])
    }

    @Test("text labels may be 'nan' when other labels are text too")
    func nanAsLabel() throws {
        let dataset = try parseCSV("x,y\n1,nan\n2,cat\n")
        #expect(dataset.classes == ["cat", "nan"])
    }

    // MARK: Syntax

    @Test("quoted cells may hold commas, doubled quotes and line breaks")
    func quoting() throws {
        let text = "\"width, cm\",\"a \"\"b\"\"\",label\n\"1.5\",2,\"say \"\"hi\"\", bye\"\n3,4,\"two\nlines\"\n5,6,plain\n"
        let dataset = try parseCSV(text)
        #expect(dataset.featureNames == ["width, cm", "a \"b\""])
        #expect(dataset.features == [1.5, 2, 3, 4, 5, 6])
        #expect(dataset.classes == ["plain", "say \"hi\", bye", "two\nlines"])
        #expect(dataset.classIndices == [1, 2, 0])
    }

    @Test("a line break inside quotes counts toward the line numbers of later rows")
    func linesAfterQuotedBreaks() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,label\n1,\"x\ny\"\nbad,z\n") }
        #expect(error?.row == 2)
        #expect(error?.message.contains("row 2 (line 4)") == true)
    }

    @Test("CRLF line ends are accepted")
    func crlf() throws {
        let dataset = try parseCSV("a,b,label\r\n1,2,x\r\n3,4,y\r\n")
        #expect(dataset.featureNames == ["a", "b"])
        #expect(dataset.features == [1, 2, 3, 4])
        #expect(dataset.classes == ["x", "y"])
    }

    @Test("a missing final newline and blank trailing lines are fine")
    func trailingLines() throws {
        #expect(try parseCSV("a,label\n1,x\n2,y").rows == 2)
        #expect(try parseCSV("a,label\n1,x\n2,y\n\n\r\n\n").rows == 2)
    }

    @Test("a UTF-8 byte order mark is not part of the first column name")
    func byteOrderMark() throws {
        let dataset = try parseCSV(bytes: [0xEF, 0xBB, 0xBF] + Array("first,label\n1,x\n".utf8))
        #expect(dataset.featureNames == ["first"])
    }

    @Test("spaces around cells are ignored")
    func blanksAroundCells() throws {
        let dataset = try parseCSV("a , b,label\n 1,\t2 , cat \n")
        #expect(dataset.featureNames == ["a", "b"])
        #expect(dataset.features == [1, 2])
        #expect(dataset.classes == ["cat"])
    }

    @Test("non-ASCII labels and names are kept")
    func unicode() throws {
        let dataset = try parseCSV("größe,espèce\n1,chat\n2,éléphant\n")
        #expect(dataset.featureNames == ["größe"])
        #expect(dataset.classes == ["chat", "éléphant"])
    }

    @Test("decimal cells read exactly as Float(String) reads them")
    func decimals() throws {
        var cells = [
            "0", "-0", "+1", "16", ".5", "5.", "-.25", "1e3", "1E-3", "2.5e+2", "0.1", "0.30000001192092896",
            "3.4028235e38", "1e-45", "1.17549435e-38", "16777216", "16777217", "9007199254740993",
            "123456789012345678901234", "0.000000000000000000000000000001", "1234.5678", "1.500000000000",
        ]
        var random = SeededGenerator(seed: 3, purpose: "decimals")
        for _ in 0..<2000 {
            let digits = String(random.next() % 100_000_000_000)
            let point = Int(random.next() % UInt64(digits.count + 1))
            var cell = String(digits.prefix(point)) + "." + String(digits.dropFirst(point))
            if random.next() % 3 == 0 { cell += "e\(Int(random.next() % 40) - 20)" }
            if random.next() % 2 == 0 { cell = "-" + cell }
            cells.append(cell)
        }
        let text = "value,label\n" + cells.map { "\($0),0" }.joined(separator: "\n")
        let dataset = try parseCSV(text)
        for (index, cell) in cells.enumerated() {
            let expected = try #require(Float(cell), "\(cell)")
            #expect(dataset.features[index].bitPattern == expected.bitPattern, "\(cell)")
        }
    }

    // MARK: Errors

    @Test("an empty file is an error")
    func emptyFile() {
        for text in ["", "\n\n", "\u{FEFF}"] {
            let error = #expect(throws: DatasetError.self) { try parseCSV(text) }
            #expect(error?.message.contains("empty") == true)
        }
    }

    @Test("a header without data rows is an error")
    func headerOnly() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,b,label\n\n") }
        #expect(error?.message.contains("no data rows") == true)
    }

    @Test("a duplicate header name is an error naming the column")
    func duplicateHeader() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,b,a,label\n1,2,3,x\n") }
        #expect(error?.column == "a")
        #expect(error?.message.contains("'a' twice (columns 1 and 3)") == true)
    }

    @Test("an empty header name is an error naming its position")
    func emptyHeaderName() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,,label\n1,2,x\n") }
        #expect(error?.message.contains("column 2 of the header") == true)
    }

    @Test("a row with too few or too many cells is an error naming the row and line")
    func raggedRows() {
        let short = #expect(throws: DatasetError.self) { try parseCSV("a,b,c,label\n1,2,3,x\n1,2,3,x\n\n1,2,x\n") }
        #expect(short?.row == 3)
        #expect(short?.message == "row 3 (line 5) has 3 cells, the header has 4")
        let long = #expect(throws: DatasetError.self) { try parseCSV("a,label\n1,x,extra\n") }
        #expect(long?.message == "row 1 (line 2) has 3 cells, the header has 2")
    }

    @Test("a non-numeric feature cell is an error naming the row, column and value")
    func nonNumericFeature() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,b,label\n1,2,x\n3,4 kg,y\n") }
        #expect(error?.row == 2)
        #expect(error?.column == "b")
        #expect(error?.message.hasPrefix("row 2 (line 3), column 'b': '4 kg' is not a number") == true)
    }

    @Test("hexadecimal and other non-decimal spellings are not numbers", arguments: ["0x10", "1e", "--1", "1.2.3", "e5", ".", "+", "1_000", "１"])
    func nonDecimal(cell: String) {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,label\n\(cell),x\n") }
        #expect(error?.message.contains("is not a number") == true)
    }

    @Test("NaN and infinities in a feature column are errors", arguments: ["nan", "NaN", "inf", "-inf", "+Inf", "Infinity", "-infinity"])
    func nonFiniteFeature(cell: String) {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,b,label\n1,\(cell),x\n") }
        #expect(error?.row == 1)
        #expect(error?.column == "b")
        #expect(error?.message.contains("'\(cell)' is not finite") == true)
    }

    @Test("a value beyond the range of float32 is an error")
    func beyondFloat() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,label\n1e39,x\n") }
        #expect(error?.message.contains("'1e39' is beyond the range of float32") == true)
        let target = #expect(throws: DatasetError.self) { try parseCSV("a,y\n1,0.5\n2,-1e40\n") }
        #expect(target?.row == 2)
        #expect(target?.column == "y")
    }

    @Test("NaN or an infinity in a numeric target is an error naming the row")
    func nonFiniteTarget() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,y\n1,0.5\n2,0.25\n3,NaN\n") }
        #expect(error?.row == 3)
        #expect(error?.column == "y")
        #expect(error?.message.contains("row 3 (line 4), column 'y': 'NaN' is not finite") == true)
        let infinity = #expect(throws: DatasetError.self) { try parseCSV("a,y\n1,1\n2,-Infinity\n", task: .classification) }
        #expect(infinity?.row == 2)
    }

    @Test("an empty cell is an error naming the row and column")
    func emptyCell() {
        for text in ["a,b,label\n1,,x\n", "a,b,label\n1,\"\",x\n", "a,b,label\n1, ,x\n"] {
            let error = #expect(throws: DatasetError.self) { try parseCSV(text) }
            #expect(error?.message == "row 1 (line 2), column 'b' is empty")
        }
        let target = #expect(throws: DatasetError.self) { try parseCSV("a,label\n1,x\n2,\n") }
        #expect(target?.row == 2)
        #expect(target?.column == "label")
    }

    @Test("an unknown target column is an error listing the columns")
    func unknownTarget() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,b,species\n1,2,x\n", target: "label") }
        #expect(error?.column == "label")
        #expect(error?.message.contains("no column 'label'") == true)
        #expect(error?.message.contains("'a', 'b', 'species'") == true)
    }

    @Test("a file with only the target column is an error")
    func onlyTarget() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("label\nx\ny\n") }
        #expect(error?.message.contains("at least one feature column") == true)
    }

    @Test("invalid UTF-8 is an error naming where it is")
    func invalidUTF8() {
        let inLabel = #expect(throws: DatasetError.self) {
            try parseCSV(bytes: Array("a,label\n1,ok\n2,".utf8) + [0xC3, 0x28] + Array("\n".utf8))
        }
        #expect(inLabel?.row == 2)
        #expect(inLabel?.column == "label")
        #expect(inLabel?.message.contains("not valid UTF-8") == true)
        let inHeader = #expect(throws: DatasetError.self) { try parseCSV(bytes: [0x61, 0xFF] + Array(",label\n1,x\n".utf8)) }
        #expect(inHeader?.message.contains("header") == true)
        #expect(inHeader?.message.contains("not valid UTF-8") == true)
        let inFeature = #expect(throws: DatasetError.self) { try parseCSV(bytes: Array("a,label\n".utf8) + [0x31, 0xFE] + Array(",x\n".utf8)) }
        #expect(inFeature?.column == "a")
        #expect(inFeature?.message.contains("not valid UTF-8") == true)
    }

    @Test("an unclosed quote is an error naming the row and column")
    func unclosedQuote() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,label\n1,x\n2,\"open\n3,y\n") }
        #expect(error?.row == 2)
        #expect(error?.column == "label")
        #expect(error?.message.contains("row 2 (line 3), column 'label'") == true)
        #expect(error?.message.contains("never closed") == true)
    }

    @Test("text after a closing quote is an error")
    func textAfterQuote() {
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,label\n\"1\"2,x\n") }
        #expect(error?.row == 1)
        #expect(error?.column == "a")
    }

    @Test("long cell values are shortened in messages")
    func longValues() {
        let long = String(repeating: "z", count: 500)
        let error = #expect(throws: DatasetError.self) { try parseCSV("a,label\n\(long),x\n") }
        #expect(error?.message.contains("…") == true)
        #expect((error?.message.count ?? 0) < 200)
    }
}
