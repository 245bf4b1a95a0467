import Foundation

/// Loads the PyTorch reference cases of `shared/reference/`.
///
/// The folder comes from `DESCENT_REFERENCE_DIR` when set, so the same tests can run against
/// another set of cases of the same format; otherwise `../shared/reference` beside the package.
public enum ReferenceFixtures {
    public static var directory: URL {
        if let path = ProcessInfo.processInfo.environment["DESCENT_REFERENCE_DIR"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        // This file lives in <package>/Tests/ReferenceFixtures/; the reference sits beside the package.
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference", isDirectory: true)
    }

    /// The `cases` array of `<name>.json`, each case as a JSON object.
    public static func cases(_ name: String) throws -> [[String: Any]] {
        let url = directory.appendingPathComponent("\(name).json")
        let data = try Data(contentsOf: url)
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cases = root["cases"] as? [[String: Any]]
        else { throw FixtureError.malformed("\(url.path) has no `cases` array") }
        return cases
    }
}

public enum FixtureError: Error, CustomStringConvertible {
    case malformed(String)
    public var description: String {
        switch self { case .malformed(let message): "malformed reference fixture: \(message)" }
    }
}

/// A `{"shape": [...], "data": [...]}` tensor from a fixture, in Double.
public struct FixtureTensor {
    public let shape: [Int]
    public let data: [Double]

    public init(_ value: Any?) throws {
        guard let object = value as? [String: Any],
              let shape = object["shape"] as? [Int],
              let data = object["data"] as? [Double]
        else { throw FixtureError.malformed("expected {shape, data}, got \(String(describing: value).prefix(80))") }
        self.shape = shape
        self.data = data
    }

    public var floats: [Float] { data.map { Float($0) } }
}

extension Dictionary where Key == String, Value == Any {
    public func tensor(_ key: String) throws -> FixtureTensor { try FixtureTensor(self[key]) }
    public func object(_ key: String) -> [String: Any] { self[key] as? [String: Any] ?? [:] }
    public func double(_ key: String) -> Double? { (self[key] as? NSNumber)?.doubleValue }
    public func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    public func string(_ key: String) -> String? { self[key] as? String }
}

/// Max-abs error check of the reference README: |actual − expected| ≤ tolerance · max(1, max|expected|).
public func maxAbsError(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count, "length \(actual.count) vs \(expected.count)")
    var worst = 0.0
    for (a, e) in zip(actual, expected) { worst = max(worst, abs(Double(a) - e)) }
    return worst
}

public func scaleOf(_ expected: [Double]) -> Double {
    max(1, expected.map(abs).max() ?? 0)
}
