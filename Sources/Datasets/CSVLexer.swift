/// One cell of a record: a byte range of the input, without its quotes and surrounding blanks.
struct CSVCell {
    var start: Int
    var end: Int
    var isQuoted: Bool
    /// The range still holds `""` pairs that stand for one `"` each.
    var hasEscapedQuotes: Bool

    var isEmpty: Bool { start == end }
}

/// Splits CSV bytes into records (RFC 4180), without copying: a record is a list of byte ranges.
///
/// Quoted cells may hold commas, line breaks and doubled quotes. Lines end in `\n` or `\r\n`.
/// Blank lines are skipped (so a trailing newline or several are fine). Spaces and tabs around a
/// cell are not part of it, so `1, 2` reads as two numbers.
struct CSVLexer {
    enum Malformation: Error {
        /// A quoted cell that reaches the end of the input.
        case unclosedQuote(cell: Int)
        /// Something other than a comma or line end after a quoted cell's closing quote.
        case textAfterClosingQuote(cell: Int)
    }

    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var position: Int
    /// The 1-based line of `position`.
    private(set) var line = 1

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        // A UTF-8 byte order mark is an encoding detail, not part of the first column's name.
        let hasByteOrderMark = bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
        position = hasByteOrderMark ? 3 : 0
    }

    /// Reads the next record into `cells` (reusing its storage); returns the line it starts on,
    /// or nil at the end of the input.
    mutating func nextRecord(into cells: inout [CSVCell]) throws(Malformation) -> Int? {
        cells.removeAll(keepingCapacity: true)
        while position < bytes.count, let length = lineEndLength(at: position) {
            position += length
            line += 1
        }
        guard position < bytes.count else { return nil }
        let startLine = line
        while true {
            cells.append(try nextCell(index: cells.count))
            if position < bytes.count && bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            if position < bytes.count, let length = lineEndLength(at: position) {
                position += length
                line += 1
            }
            return startLine
        }
    }

    /// Reads one cell, leaving `position` on the comma or line end that follows it.
    private mutating func nextCell(index: Int) throws(Malformation) -> CSVCell {
        skipBlanks()
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
            let start = position
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\n") { break }
                position += 1
            }
            var end = position
            while end > start && isBlank(bytes[end - 1]) { end -= 1 }
            // The `\r` of `\r\n` (or a final `\r`) ends the line, it is not part of the cell.
            if end > start && bytes[end - 1] == UInt8(ascii: "\r") && lineEndLength(at: end - 1) != nil {
                end -= 1
                while end > start && isBlank(bytes[end - 1]) { end -= 1 }
            }
            return CSVCell(start: start, end: end, isQuoted: false, hasEscapedQuotes: false)
        }

        position += 1
        let start = position
        var hasEscapedQuotes = false
        while true {
            guard position < bytes.count else { throw .unclosedQuote(cell: index) }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                if position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "\"") {
                    hasEscapedQuotes = true
                    position += 2
                    continue
                }
                break
            }
            if byte == UInt8(ascii: "\n") { line += 1 }
            position += 1
        }
        let end = position
        position += 1  // the closing quote
        skipBlanks()
        guard position == bytes.count || bytes[position] == UInt8(ascii: ",") || lineEndLength(at: position) != nil else {
            throw .textAfterClosingQuote(cell: index)
        }
        return CSVCell(start: start, end: end, isQuoted: true, hasEscapedQuotes: hasEscapedQuotes)
    }

    /// 1 for `\n`, 2 for `\r\n`, 1 for a `\r` that ends the input; nil when no line ends here.
    @inline(__always)
    private func lineEndLength(at index: Int) -> Int? {
        switch bytes[index] {
        case UInt8(ascii: "\n"): return 1
        case UInt8(ascii: "\r"):
            if index + 1 == bytes.count { return 1 }
            return bytes[index + 1] == UInt8(ascii: "\n") ? 2 : nil
        default: return nil
        }
    }

    @inline(__always)
    private func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    private mutating func skipBlanks() {
        while position < bytes.count && isBlank(bytes[position]) { position += 1 }
    }

    /// The number of `\n` bytes from `position` on: an upper bound on the records left.
    func remainingLineCount() -> Int {
        var count = 0
        for index in position..<bytes.count where bytes[index] == UInt8(ascii: "\n") { count += 1 }
        return count
    }

    /// A cell's bytes, without its quotes; `""` pairs are still doubled.
    @inline(__always)
    func rawBytes(of cell: CSVCell) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[cell.start..<cell.end])
    }

    /// A cell as text, or nil when it is not valid UTF-8.
    func text(of cell: CSVCell) -> String? {
        guard cell.hasEscapedQuotes else { return decodeUTF8(rawBytes(of: cell)) }
        return unescapedBytes(of: cell).withUnsafeBufferPointer { decodeUTF8($0) }
    }

    /// A cell for an error message: lossy, unescaped, shortened.
    func preview(of cell: CSVCell, limit: Int = 40) -> String {
        let text = String(decoding: unescapedBytes(of: cell), as: UTF8.self)
        return text.count > limit ? String(text.prefix(limit)) + "…" : text
    }

    /// A cell's bytes with each `""` pair turned into one `"`.
    private func unescapedBytes(of cell: CSVCell) -> [UInt8] {
        guard cell.hasEscapedQuotes else { return Array(rawBytes(of: cell)) }
        var unescaped: [UInt8] = []
        unescaped.reserveCapacity(cell.end - cell.start)
        var index = cell.start
        while index < cell.end {
            unescaped.append(bytes[index])
            index += bytes[index] == UInt8(ascii: "\"") ? 2 : 1
        }
        return unescaped
    }
}

/// The bytes as a String, or nil when they are not valid UTF-8.
func decodeUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
    // Labels are nearly always ASCII, which is valid UTF-8 as it is.
    if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    var text = ""
    while true {
        switch decoder.decode(&iterator) {
        case .scalarValue(let scalar): text.unicodeScalars.append(scalar)
        case .emptyInput: return text
        case .error: return nil
        }
    }
}
