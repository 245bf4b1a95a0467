import Foundation

/// A JSON document as a value, so specs can be checked key by key (unknown keys, every problem
/// at once) instead of failing on the first `Decodable` error.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value.rounded() == value, abs(value) < 1e15 { try container.encode(Int64(value)) }
            else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The deepest nesting `parse` reads: its decoder and every checker after it recurse once per level.
    public static let maxDepth = 128

    /// Parses JSON text; throws `SpecIssue` at path "" for malformed text (including text that is not
    /// UTF-8 or nests deeper than `maxDepth`), and at the key's path for a key given twice in one object
    /// (decoders keep one of the two silently).
    public static func parse(_ data: Data) throws -> JSONValue {
        // RFC 8259 §8.1: JSON between systems is UTF-8. Foundation would also take UTF-16 and UTF-32
        // (recognized by their NUL bytes), which no byte-level check here could follow.
        guard !data.contains(0), String(data: data, encoding: .utf8) != nil else {
            throw SpecIssue(path: "", message: "malformed JSON: the text is not UTF-8 (RFC 8259 asks for UTF-8 without NUL bytes)")
        }
        if JSONNesting.exceeds(maxDepth, in: data) {
            throw SpecIssue(path: "", message: "malformed JSON: arrays and objects nest deeper than \(maxDepth) levels")
        }
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: data) }
        catch { throw SpecIssue(path: "", message: "malformed JSON: \(describe(error))") }
        if let duplicate = DuplicateKeyScanner.firstDuplicate(in: data) {
            throw SpecIssue(path: duplicate, message: "is given twice; give each key once")
        }
        return value
    }

    /// Compact JSON text with sorted keys.
    public func encodedString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "null"
    }

    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let fields) = self { return fields[key] }
        return nil
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? context.debugDescription
        default: return String(describing: error)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    public init(_ value: Int) { self = .number(Double(value)) }
    public init(_ value: Double) { self = .number(value) }
    /// Through the shortest decimal form, so 0.001 as a Float reads 0.001 and not 0.0010000000474974513.
    public init(_ value: Float) { self = .number(value.isFinite ? Double(String(value)) ?? Double(value) : Double(value)) }
    public init(_ value: String?) { self = value.map(JSONValue.string) ?? .null }
    public init(_ values: [Int]) { self = .array(values.map { .number(Double($0)) }) }
    public init(_ values: [String]) { self = .array(values.map(JSONValue.string)) }
}

/// Finds a key that appears twice in one object of (already valid) JSON text, and returns its
/// dotted path. A byte-level walk: strings (with escapes), objects and arrays; nothing else matters.
enum DuplicateKeyScanner {
    private enum Container { case object(keys: Set<String>, path: String, pendingKey: String?), array(path: String, index: Int) }

    static func firstDuplicate(in data: Data) -> String? {
        let bytes = [UInt8](data)
        var stack: [Container] = []
        var index = 0
        var expectingKey = false
        func childPath(_ key: String) -> String {
            guard case .object(_, let path, _)? = stack.last else { return key }
            return path.isEmpty ? key : "\(path).\(key)"
        }
        /// The path of a value about to start in the innermost container.
        func valuePath() -> String {
            switch stack.last {
            case .object(_, let path, let key?)?: return path.isEmpty ? key : "\(path).\(key)"
            case .array(let path, let position)?: return "\(path)[\(position)]"
            default: return ""
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                var end = index + 1
                var text: [UInt8] = []
                while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
                    if bytes[end] == UInt8(ascii: "\\") { text.append(bytes[end]); end += 1 }
                    if end < bytes.count { text.append(bytes[end]) }
                    end += 1
                }
                if expectingKey, case .object(var keys, let path, _)? = stack.last {
                    let key = String(decoding: text, as: UTF8.self)
                    if !keys.insert(key).inserted { return childPath(key) }
                    stack[stack.count - 1] = .object(keys: keys, path: path, pendingKey: key)
                    expectingKey = false
                }
                index = end
            case UInt8(ascii: "{"):
                stack.append(.object(keys: [], path: valuePath(), pendingKey: nil))
                expectingKey = true
            case UInt8(ascii: "["):
                stack.append(.array(path: valuePath(), index: 0))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                // Valid JSON closes only what it opened; anything else is not this scanner's to judge.
                guard !stack.isEmpty else { return nil }
                stack.removeLast()
            case UInt8(ascii: ","):
                switch stack.last {
                case .object?: expectingKey = true
                case .array(let path, let position)?: stack[stack.count - 1] = .array(path: path, index: position + 1)
                case nil: break
                }
            default: break
            }
            index += 1
        }
        return nil
    }
}

extension JSONValue {
    /// The value when it is of that kind, else nil: for reading JSON whose shape is not checked (answers, metrics rows).
    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var number: Double? { if case .number(let value) = self { value } else { nil } }
    /// A number with no fractional part.
    public var int: Int? { number.flatMap { $0.rounded() == $0 ? Int(exactly: $0) : nil } }
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    public var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    public var object: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
    public var isNull: Bool { self == .null }

    public subscript(index: Int) -> JSONValue? {
        guard let array, array.indices.contains(index) else { return nil }
        return array[index]
    }
}

/// How deeply arrays and objects nest in JSON text, found by a byte-level walk (strings and their
/// escapes skipped) that needs no parse, so text nested too deep is refused before a parser recurses.
public enum JSONNesting {
    /// Whether some array or object lies deeper than `limit` levels (the outermost is level 1).
    /// Inlinable, so callers get it specialized for their collection rather than a generic call per byte.
    @inlinable
    public static func exceeds(_ limit: Int, in bytes: some Collection<UInt8>) -> Bool {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return true }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return false
    }
}
