import Foundation

/// Reads NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), gzip-compressed or not.
///
/// The file is the magic `\x93NUMPY`, a version, a header length, then a Python dict literal
/// such as `{'descr': '<f4', 'fortran_order': False, 'shape': (1797, 64), }`, then the values.
/// Element types: floats (`f4`, `f8`), signed and unsigned integers of 1 to 8 bytes, and bools,
/// in either byte order. Arrays must be in C order (`fortran_order` False).
public enum NPYParser {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// The samples of a features array: `(N, D)`, `(N, H, W)` (one-channel images, sample shape
    /// `[1, H, W]`) or `(N, C, H, W)`. Values keep their stored scale.
    ///
    /// - Parameter maxBytes: the most bytes gzip-compressed data may decompress to.
    public static func readSamples(data: Data, maxBytes: Int = .max) throws(DatasetError) -> SampleArray {
        let data = try Gzip.decompressIfNeeded(data, maxBytes: maxBytes)
        return try data.withDatasetBytes { (file: UnsafeRawBufferPointer) throws(DatasetError) -> SampleArray in
            try ArrayReading.samples(file, try layout(file), labelsHint:
                "Upload the features first (format=npy), then these labels with format=npy&labels_of=<the features' dataset id>")
        }
    }

    /// The labels of a labels array: shape `(N)` or `(N, 1)`.
    public static func readLabels(data: Data, maxBytes: Int = .max) throws(DatasetError) -> [Double] {
        let data = try Gzip.decompressIfNeeded(data, maxBytes: maxBytes)
        return try data.withDatasetBytes { (file: UnsafeRawBufferPointer) throws(DatasetError) -> [Double] in
            try ArrayReading.labels(file, try layout(file))
        }
    }

    /// A table: a 2-D `(N, D)` array whose last column is the target and the others the
    /// features (`target=last`). The task is inferred as for CSV unless given.
    public static func readTable(data: Data, task: LearningTask? = nil, maxBytes: Int = .max) throws(DatasetError) -> TabularDataset {
        let data = try Gzip.decompressIfNeeded(data, maxBytes: maxBytes)
        let (layout, values) = try data.withDatasetBytes { (file: UnsafeRawBufferPointer) throws(DatasetError) -> (ArrayLayout, [Double]) in
            let layout = try Self.layout(file)
            guard layout.shape.count == 2, layout.shape[1] >= 2 else {
                throw DatasetError("target=last takes a 2-D array (samples, columns) of at least 2 columns, the last one the target; this one has shape \(layout.shape)")
            }
            return (layout, try layout.decode(file, as: Double.self))
        }
        let rows = layout.shape[0], columns = layout.shape[1], featureCount = columns - 1
        var features = [Float]()
        features.reserveCapacity(rows * featureCount)
        var labels = [Double]()
        labels.reserveCapacity(rows)
        for row in 0..<rows {
            for column in 0..<featureCount {
                let value = values[row * columns + column]
                let feature = Float(value)
                guard feature.isFinite else {
                    throw DatasetError("the value at index [\(row), \(column)] (\(value)) is beyond the range of float32", row: row + 1)
                }
                features.append(feature)
            }
            labels.append(values[row * columns + featureCount])
        }
        let samples = SampleArray(features: features, rows: rows, sampleShape: [featureCount], arrayShape: layout.shape,
                                  elementType: layout.element.name)
        return try TabularDataset(samples: samples, targets: DatasetTargets(labels: labels, task: task), targetName: "last")
    }

    /// Reads and checks the header.
    static func layout(_ file: UnsafeRawBufferPointer) throws(DatasetError) -> ArrayLayout {
        guard file.starts(with: magic) else {
            if file.starts(with: Array("PK\u{03}\u{04}".utf8)) {
                throw DatasetError("this is a zip archive (an .npz?), not an .npy file; upload one array saved with np.save")
            }
            if file.count >= 4, file[0] == 0, file[1] == 0, IDXParser.elementTypes[file[2]] != nil {
                throw DatasetError("this is an IDX file, not NPY; upload it with format=idx")
            }
            let start = file.prefix(6).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw DatasetError("this is not an .npy file: an .npy file starts with \\x93NUMPY (93 4e 55 4d 50 59), but this one starts with \(start)")
        }
        guard file.count >= 10 else { throw DatasetError("the file is truncated: it ends inside the .npy preamble") }
        let major = file[6], minor = file[7]
        let headerStart: Int
        let headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
        case 2, 3:
            guard file.count >= 12 else { throw DatasetError("the file is truncated: it ends inside the .npy preamble") }
            headerStart = 12
            headerLength = Int(UInt32(littleEndian: file.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        default:
            throw DatasetError("the .npy format version is \(major).\(minor); versions 1.0, 2.0 and 3.0 can be read")
        }
        guard file.count >= headerStart + headerLength else {
            throw DatasetError("the file is truncated: its header is \(headerLength) bytes but the file has \(file.count)")
        }
        // Version 3 allows UTF-8 in the header (field names of structured types); 1 and 2 are Latin-1.
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[headerStart..<(headerStart + headerLength)])
        let header = String(decoding: headerBytes, as: UTF8.self)
        var reader = HeaderReader(header)
        let fields = try reader.dictionary()

        guard let descr = fields["descr"] else { throw DatasetError("the .npy header has no 'descr' (the element type): \(header.trimmed)") }
        guard case .string(let typeString) = descr else {
            throw DatasetError("the array has a structured dtype (fields \(header.trimmed)); save a plain numeric array")
        }
        let element = try elementType(typeString)
        guard case .bool(let fortranOrder)? = fields["fortran_order"] else {
            throw DatasetError("the .npy header has no 'fortran_order' True or False: \(header.trimmed)")
        }
        if fortranOrder {
            throw DatasetError("the array is stored in Fortran (column-major) order; save it in C order: np.save(path, np.ascontiguousarray(array))")
        }
        guard case .tuple(let shape)? = fields["shape"] else {
            throw DatasetError("the .npy header has no 'shape' tuple: \(header.trimmed)")
        }
        try ArrayReading.checkNotEmpty(shape)
        return try ArrayLayout(shape: shape, element: element, dataOffset: headerStart + headerLength, fileSize: file.count)
    }

    /// `'<f4'` → little-endian float32, and so on.
    static func elementType(_ descr: String) throws(DatasetError) -> ElementType {
        let characters = Array(descr)
        guard characters.count >= 2 else {
            throw DatasetError("the dtype '\(descr)' is not a numeric type this server reads; save float32, float64 or integers")
        }
        // Objects ('|O') have no size.
        let size = Int(String(characters[2...])) ?? 0
        let bigEndian: Bool
        switch characters[0] {
        case "<": bigEndian = false
        case ">": bigEndian = true
        case "|", "=": bigEndian = 1.bigEndian == 1
        default: throw DatasetError("the dtype '\(descr)' has no byte order ('<', '>', '|' or '=')")
        }
        let kind: ElementType.Kind
        switch (characters[1], size) {
        case ("f", 4), ("f", 8): kind = .float
        case ("i", 1), ("i", 2), ("i", 4), ("i", 8): kind = .signed
        case ("u", 1), ("u", 2), ("u", 4), ("u", 8), ("b", 1): kind = .unsigned
        case ("f", _):
            throw DatasetError("the dtype '\(descr)' (float\(size * 8)) is not supported; save float32 or float64 (array.astype(np.float32))")
        default:
            let what = switch characters[1] {
            case "U": "unicode strings"
            case "S", "a": "byte strings"
            case "O": "Python objects"
            case "c": "complex numbers"
            case "M", "m": "dates or times"
            case "V": "raw bytes"
            default: "an unknown type"
            }
            throw DatasetError("the dtype '\(descr)' (\(what)) is not supported; save float32, float64 or integers")
        }
        return ElementType(kind: kind, size: size, bigEndian: bigEndian, name: descr)
    }
}

/// The few Python literals an .npy header holds.
private enum HeaderValue: Equatable {
    case string(String)
    case bool(Bool)
    case integer(Int)
    case tuple([Int])
    /// A list (a structured dtype's fields) or anything else this reader does not need.
    case other
}

/// Reads the header's dict literal: string keys; strings, True/False, None, integers and tuples
/// of integers as values; lists are skipped.
private struct HeaderReader {
    let characters: [Character]
    let text: String
    var position = 0

    init(_ text: String) {
        self.text = text
        characters = Array(text)
    }

    mutating func dictionary() throws(DatasetError) -> [String: HeaderValue] {
        skipSpace()
        try expect("{")
        var fields: [String: HeaderValue] = [:]
        while true {
            skipSpace()
            if peek == "}" { position += 1; break }
            guard case .string(let key) = try value() else { throw malformed("a key that is not a string") }
            skipSpace()
            try expect(":")
            fields[key] = try value()
            skipSpace()
            if peek == "," { position += 1; continue }
            try expect("}")
            break
        }
        return fields
    }

    private mutating func value() throws(DatasetError) -> HeaderValue {
        skipSpace()
        guard let character = peek else { throw malformed("an unfinished value") }
        switch character {
        case "'", "\"":
            position += 1
            var string = ""
            while let next = peek, next != character {
                string.append(next)
                position += 1
            }
            try expect(character)
            return .string(string)
        case "(":
            position += 1
            var items: [Int] = []
            while true {
                skipSpace()
                if peek == ")" { position += 1; break }
                // A shape holds integers only: refusing a nested tuple here keeps the reader from recursing.
                if peek == "(" || peek == "[" { throw malformed("a shape entry that is not an integer") }
                guard case .integer(let item) = try value() else { throw malformed("a shape entry that is not an integer") }
                items.append(item)
                skipSpace()
                if peek == "," { position += 1; continue }
                try expect(")")
                break
            }
            return .tuple(items)
        case "[":
            // Skip to the matching bracket (quoted text may hold brackets).
            var depth = 0
            var quote: Character?
            while let next = peek {
                position += 1
                if let open = quote { if next == open { quote = nil }; continue }
                if next == "'" || next == "\"" { quote = next }
                else if next == "[" { depth += 1 }
                else if next == "]" { depth -= 1; if depth == 0 { return .other } }
            }
            throw malformed("an unclosed list")
        default:
            var word = ""
            while let next = peek, next.isLetter || next.isNumber || next == "-" || next == "_" {
                word.append(next)
                position += 1
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .other
            default:
                // Python 2 wrote long integers with an L: (1797L, 64L).
                let digits = word.hasSuffix("L") ? String(word.dropLast()) : word
                guard let integer = Int(digits), integer >= 0 else { throw malformed("'\(word)'") }
                return .integer(integer)
            }
        }
    }

    private var peek: Character? { position < characters.count ? characters[position] : nil }

    private mutating func skipSpace() {
        while let next = peek, next.isWhitespace { position += 1 }
    }

    private mutating func expect(_ character: Character) throws(DatasetError) {
        guard peek == character else { throw malformed(peek.map { "'\($0)' where '\(character)' belongs" } ?? "an end where '\(character)' belongs") }
        position += 1
    }

    private func malformed(_ problem: String) -> DatasetError {
        DatasetError("the .npy header is not a valid dict literal (\(problem) at character \(position + 1)): \(text.trimmed)")
    }
}

extension String {
    /// Without the padding spaces and newline of an .npy header, and cut short if long.
    fileprivate var trimmed: String {
        let text = trimmingCharacters(in: .whitespacesAndNewlines)
        return text.count > 200 ? text.prefix(200) + "…" : text
    }
}
