import Foundation
import NeuralNetwork

/// The spec's `notify`: a webhook POSTed when the job reaches one of `events`.
public struct NotifySpec: Sendable, Equatable {
    public static let eventNames = ["succeeded", "failed", "cancelled"]

    public var url: URL
    /// Final states that trigger a delivery, a subset of `eventNames`.
    public var events: [String]

    public init(url: URL, events: [String]) {
        self.url = url
        self.events = events
    }

    public var jsonValue: JSONValue { ["url": JSONValue(url.absoluteString), "events": .array(events.map { JSONValue($0) })] }

    /// Reads `notify` (absent or null: none), reporting every problem at `notify.<field>`.
    static func read(_ root: ObjectReader) -> NotifySpec? {
        guard let object = root.object("notify", allowedKeys: ["url", "events"]) else { return nil }
        let listed = object.array("events")
        if let listed, listed.isEmpty { object.report("events", "must list at least one of \(eventNames.joined(separator: ", "))") }
        let events = listed.map { items in
            items.compactMap { item -> String? in
                guard case .string(let name) = item, eventNames.contains(name) else {
                    object.report("events", "must list states among \(eventNames.joined(separator: ", ")), got \(item.briefDescription)")
                    return nil
                }
                return name
            }
        } ?? eventNames
        guard let text = object.optionalString("url") else {
            if !object.has("url") { object.report("url", "is required: the http(s) address to POST the job's final state to") }
            return nil
        }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty
        else {
            object.report("url", "must be an absolute http or https URL, got \"\(text)\"")
            return nil
        }
        if url.user != nil || url.password != nil {
            // It would be stored with the spec, shown in every answer and logged with every delivery.
            object.report("url", "must not carry credentials (user:password@…): the spec is shown and stored as it is; authenticate the receiver another way")
            return nil
        }
        var seen = Set<String>()
        return NotifySpec(url: url, events: events.filter { seen.insert($0).inserted })
    }

    /// The `notify` of a stored spec's JSON text, nil when it has none (or the text does not parse).
    public static func of(specJSON text: String) -> NotifySpec? {
        guard let json = try? JSONValue.parse(Data(text.utf8)),
              let root = ObjectReader(json, path: "", diagnostics: SpecDiagnostics(), allowedKeys: JobSpec.topLevelKeys)
        else { return nil }
        return read(root)
    }
}
