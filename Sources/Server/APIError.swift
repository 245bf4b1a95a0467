import Foundation
import Hummingbird
import NeuralNetwork

/// An error answered as API.md's envelope: `{"error": {"code", "message", "details"}}`.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var details: [SpecIssue] = []

    func response(from request: Request, context: some RequestContext) throws -> Response {
        // `details` is always there (empty but for 422s), as API.md's envelope shows it.
        let error: JSONValue = [
            "code": JSONValue(code), "message": JSONValue(message),
            "details": .array(details.map { ["path": JSONValue($0.path), "message": JSONValue($0.message)] }),
        ]
        return jsonResponse(["error": error], status: status)
    }

    static func badRequest(_ message: String, code: String = "bad_request") -> APIError {
        APIError(status: .badRequest, code: code, message: message)
    }
    static func notFound(_ what: String, _ id: String) -> APIError {
        APIError(status: .notFound, code: "not_found", message: "no \(what) with id \(id)")
    }
    static func conflict(_ message: String) -> APIError {
        APIError(status: .conflict, code: "wrong_state", message: message)
    }
    static func tooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "body_too_large", message: "the request body exceeds the limit of \(limit) bytes")
    }
    static func unsupportedMediaType(_ given: String, expected: String) -> APIError {
        APIError(status: .unsupportedMediaType, code: "unsupported_media_type", message: "content-type \(given) is not accepted here; send \(expected)")
    }
    static func invalid(_ issues: [SpecIssue], message: String = "the spec is invalid") -> APIError {
        let summary = issues.count == 1 ? "\(message): \(issues[0])" : "\(message): \(issues.count) problems"
        return APIError(status: .unprocessableContent, code: "invalid", message: summary, details: issues)
    }
}

/// A JSON response from a `JSONValue` (the API's snake_case shapes are spelled out where they're built).
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data("null".utf8)
    var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
    headers.append(contentsOf: extra)
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

extension Date {
    /// RFC 3339, UTC, e.g. 2026-11-29T01:49:28.123Z.
    var rfc3339: String { formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)) }
}

extension Request {
    /// The whole body, refusing more than `limit` bytes with a 413.
    func collectBody(limit: Int) async throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for try await part in body {
            if buffer.readableBytes + part.readableBytes > limit { throw APIError.tooLarge(limit: limit) }
            var part = part
            buffer.writeBuffer(&part)
        }
        return buffer
    }

    /// Parses a JSON body; 415 for another declared media type, 400 for an empty or malformed body.
    func decodeJSONBody(limit: Int) async throws -> JSONValue {
        // curl -d sends application/x-www-form-urlencoded unless told otherwise; the body is JSON all the same.
        if let type = headers[.contentType]?.lowercased(),
           !type.hasPrefix("application/json"), !type.hasPrefix("application/x-www-form-urlencoded") {
            throw APIError.unsupportedMediaType(type, expected: "application/json")
        }
        let buffer = try await collectBody(limit: limit)
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request body is empty; send a JSON object", code: "empty_body") }
        do { return try JSONValue.parse(Data(buffer.readableBytesView)) } catch let issue as SpecIssue {
            // Well-formed JSON with a key given twice is a 422 naming the key; anything else is malformed (400).
            if !issue.path.isEmpty { throw APIError.invalid([issue]) }
            throw APIError.badRequest(issue.message, code: "malformed_json")
        }
    }
}
