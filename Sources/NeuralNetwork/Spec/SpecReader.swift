/// One problem in a spec, located by its dotted path (`optimizer.lr`, `model.layers[2].units`).
public struct SpecIssue: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Collects every problem found while reading a spec, so a client sees them all at once.
public final class SpecDiagnostics {
    public private(set) var issues: [SpecIssue] = []
    public init() {}
    public func report(_ path: String, _ message: String) { issues.append(SpecIssue(path: path, message: message)) }
    public var isEmpty: Bool { issues.isEmpty }
}

/// Reads the fields of one JSON object at `path`, reporting wrong types, out-of-range values and
/// unknown keys to `diagnostics`. Each accessor returns a usable value (the default when the field
/// is bad) so reading continues and finds every problem.
public struct ObjectReader {
    public let path: String
    public let fields: [String: JSONValue]
    public let diagnostics: SpecDiagnostics

    /// nil (with an issue reported) when `value` is not an object. Keys outside `allowedKeys` are reported as unknown.
    public init?(_ value: JSONValue, path: String, diagnostics: SpecDiagnostics, allowedKeys: [String]) {
        guard case .object(let fields) = value else {
            diagnostics.report(path, "must be an object, got \(value.kindName)")
            return nil
        }
        self.path = path
        self.fields = fields
        self.diagnostics = diagnostics
        let allowed = Set(allowedKeys)
        for key in fields.keys.sorted() where !allowed.contains(key) {
            diagnostics.report(childPath(key), "unknown key; expected one of: \(allowedKeys.joined(separator: ", "))")
        }
    }

    public func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func has(_ key: String) -> Bool {
        if let value = fields[key], value != .null { return true }
        return false
    }

    public func report(_ key: String, _ message: String) { diagnostics.report(childPath(key), message) }

    /// An integer within `range`: every integer field names its range where it is read, so no value
    /// from a request reaches size arithmetic unbounded.
    public func int(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let value = fields[key], value != .null else { return defaultValue }
        guard case .number(let number) = value, number.rounded() == number, abs(number) < 1e15 else {
            report(key, "must be an integer, got \(describe(value))")
            return defaultValue
        }
        let integer = Int(number)
        if !range.contains(integer) {
            report(key, "must be \(describe(range)), got \(integer)")
            return defaultValue
        }
        return integer
    }

    public func optionalInt(_ key: String, range: ClosedRange<Int>) -> Int? {
        has(key) ? int(key, default: 0, range: range) : nil
    }

    /// A number; `check` returns an error message (e.g. "must be > 0") for a value out of range.
    public func double(_ key: String, default defaultValue: Double, check: ((Double) -> String?)? = nil) -> Double {
        guard let value = fields[key], value != .null else { return defaultValue }
        guard case .number(let number) = value, number.isFinite else {
            report(key, "must be a number, got \(describe(value))")
            return defaultValue
        }
        if let message = check?(number) {
            report(key, "\(message), got \(format(number))")
            return defaultValue
        }
        return number
    }

    public func optionalDouble(_ key: String, check: ((Double) -> String?)? = nil) -> Double? {
        has(key) ? double(key, default: .nan, check: check).nanToNil : nil
    }

    public func bool(_ key: String, default defaultValue: Bool) -> Bool {
        guard let value = fields[key], value != .null else { return defaultValue }
        guard case .bool(let flag) = value else {
            report(key, "must be true or false, got \(describe(value))")
            return defaultValue
        }
        return flag
    }

    public func string(_ key: String, default defaultValue: String) -> String {
        optionalString(key) ?? defaultValue
    }

    public func optionalString(_ key: String) -> String? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .string(let text) = value else {
            report(key, "must be a string, got \(describe(value))")
            return nil
        }
        return text
    }

    /// One of `choices`; anything else is reported with the list of choices.
    public func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, default defaultValue: Choice) -> Choice
    where Choice.RawValue == String {
        guard let text = optionalString(key) else { return defaultValue }
        if let choice = Choice(rawValue: text) { return choice }
        let names = Choice.allCases.map(\.rawValue).joined(separator: ", ")
        report(key, "must be one of \(names), got \"\(text)\"")
        return defaultValue
    }

    public func object(_ key: String, allowedKeys: [String]) -> ObjectReader? {
        guard let value = fields[key], value != .null else { return nil }
        return ObjectReader(value, path: childPath(key), diagnostics: diagnostics, allowedKeys: allowedKeys)
    }

    public func array(_ key: String) -> [JSONValue]? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .array(let items) = value else {
            report(key, "must be an array, got \(describe(value))")
            return nil
        }
        return items
    }

    /// Integers, each within `range` (reported at its own index), and at most `maxCount` of them.
    public func intArray(_ key: String, range: ClosedRange<Int>, maxCount: Int = 10_000) -> [Int]? {
        guard let items = array(key) else { return nil }
        guard items.count <= maxCount else {
            report(key, "must hold at most \(maxCount) entries, got \(items.count)")
            return nil
        }
        var result: [Int] = []
        for (index, item) in items.enumerated() {
            guard case .number(let number) = item, number.rounded() == number, abs(number) < 1e15 else {
                diagnostics.report("\(childPath(key))[\(index)]", "must be an integer, got \(describe(item))")
                return nil
            }
            guard range.contains(Int(number)) else {
                diagnostics.report("\(childPath(key))[\(index)]", "must be \(describe(range)), got \(Int(number))")
                return nil
            }
            result.append(Int(number))
        }
        return result
    }

    public func doubleArray(_ key: String, maxCount: Int = 10_000) -> [Double]? {
        guard let items = array(key) else { return nil }
        guard items.count <= maxCount else {
            report(key, "must hold at most \(maxCount) entries, got \(items.count)")
            return nil
        }
        var result: [Double] = []
        for (index, item) in items.enumerated() {
            guard case .number(let number) = item, number.isFinite else {
                diagnostics.report("\(childPath(key))[\(index)]", "must be a number, got \(describe(item))")
                return nil
            }
            result.append(number)
        }
        return result
    }

    /// Reports a present, non-null field that this version cannot act on yet.
    public func rejectUnsupported(_ key: String, _ what: String) {
        if has(key) { report(key, "\(what) is not supported yet") }
    }
}

extension JSONValue {
    /// A short rendering for error messages: strings quoted and cut, numbers as written.
    public var briefDescription: String { describe(self) }
}

func describe(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): "\"\(text.prefix(40))\""
    case .number(let number): format(number)
    case .bool(let flag): String(flag)
    default: value.kindName
    }
}

func describe(_ range: ClosedRange<Int>) -> String {
    if range.upperBound == Int.max { return "≥ \(range.lowerBound)" }
    return "between \(range.lowerBound) and \(range.upperBound)"
}

func format(_ number: Double) -> String {
    number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
}

extension Double {
    var nanToNil: Double? { isNaN ? nil : self }
}

/// Common range checks for `ObjectReader.double(_:default:check:)`.
public enum Check {
    public static let positive: @Sendable (Double) -> String? = { $0 > 0 ? nil : "must be > 0" }
    public static let nonNegative: @Sendable (Double) -> String? = { $0 >= 0 ? nil : "must be ≥ 0" }
    public static let unitInterval: @Sendable (Double) -> String? = { (0...1).contains($0) ? nil : "must be between 0 and 1" }
    public static let fraction: @Sendable (Double) -> String? = { (0..<1).contains($0) ? nil : "must be ≥ 0 and < 1" }
    /// Representable in float32 (whose largest finite value is about 3.4e38) without becoming infinite.
    public static let float32: @Sendable (Double) -> String? = { Float($0).isFinite ? nil : "must be within float32's range (±3.4e38)" }
}
