import Foundation
import NIOPosix
import Hummingbird
import NeuralNetwork

/// An error answered as API.md's envelope: `{"error": {"code", "message", "details"}}`.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    var details: [SpecIssue] = []
    /// Extra headers, e.g. `WWW-Authenticate` on a 401.
    var headers: HTTPFields = [:]

    func response(from request: Request, context: some RequestContext) throws -> Response {
        // `details` is always there (empty but for 422s), as API.md's envelope shows it.
        let error: JSONValue = [
            "code": JSONValue(code), "message": JSONValue(message),
            "details": .array(details.map { ["path": JSONValue($0.path), "message": JSONValue($0.message)] }),
        ]
        return jsonResponse(["error": error], status: status, headers: headers)
    }

    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750; `error="invalid_token"` when a token was sent).
    static func unauthorized(_ message: String, invalidToken: Bool = false) -> APIError {
        let challenge = invalidToken ? #"Bearer realm="descent", error="invalid_token""# : #"Bearer realm="descent""#
        return APIError(status: .unauthorized, code: "unauthorized", message: message, headers: [.wwwAuthenticate: challenge])
    }
    /// 429: a per-tenant limit; the message names it and its flag.
    static func tooManyRequests(code: String, _ message: String) -> APIError {
        APIError(status: .tooManyRequests, code: code, message: message)
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
    static func tooLarge(limit: Int, what: String = "the request body") -> APIError {
        APIError(status: .contentTooLarge, code: "body_too_large", message: "\(what) exceeds the limit of \(limit) bytes")
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

/// What a JSON body may be: how big, how deeply nested, how long it may take to arrive.
struct JSONBodyLimits: Sendable {
    var maxBytes: Int
    var maxDepth: Int
    var timeout: Duration
    /// Names the body, and the flag of `maxBytes`, in a 413: "the JSON body (--max-spec-bytes)".
    var what = "the request body"
}

/// Runs CPU-heavy work (parsing a large body or an upload, loading, running or exporting a model) on NIO's
/// thread pool, one thread per core: Swift's cooperative pool has one thread per core too, and work that holds
/// one delays every other request, `/healthz` included. Not Dispatch's global queue: on Linux the cooperative
/// pool and the global queues share Dispatch's threads, and four 15 MB predictions run there kept `/healthz`
/// waiting for seconds (p99 5.1 s, against 6.3 ms on this pool; `scripts/healthz_under_predict.py`).
func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(work)
}

/// Runs `work` (reading a request body) and answers 408 if it has not finished within `timeout`, so a
/// client that trickles its body cannot hold a handler, a file and its connection forever.
func withBodyDeadline<T: Sendable>(_ timeout: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await work() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw APIError(status: .requestTimeout, code: "request_timeout",
                           message: "the request body did not arrive within \(timeout.components.seconds) seconds")
        }
        return value
    }
}

extension Request {
    /// The whole body, refusing more than `limit` bytes with a 413, and a body that has not arrived
    /// whole within `timeout` with a 408 (a stalled client cannot hold a handler forever).
    func collectBody(limit: Int, what: String = "the request body", timeout: Duration = .seconds(60)) async throws -> ByteBuffer {
        let body = self.body
        return try await withBodyDeadline(timeout) {
            var buffer = ByteBuffer()
            for try await part in body {
                if buffer.readableBytes + part.readableBytes > limit { throw APIError.tooLarge(limit: limit, what: what) }
                var part = part
                buffer.writeBuffer(&part)
            }
            return buffer
        }
    }

    /// Parses a JSON body; 415 for another declared media type, 400 for an empty or malformed body,
    /// 413 above `limits.maxBytes`, 422 nested deeper than `limits.maxDepth`.
    func decodeJSONBody(_ limits: JSONBodyLimits) async throws -> JSONValue {
        // curl -d sends application/x-www-form-urlencoded unless told otherwise; the body is JSON all the same.
        if let type = headers[.contentType]?.lowercased(),
           !type.hasPrefix("application/json"), !type.hasPrefix("application/x-www-form-urlencoded") {
            throw APIError.unsupportedMediaType(type, expected: "application/json")
        }
        let buffer = try await collectBody(limit: limits.maxBytes, what: limits.what, timeout: limits.timeout)
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request body is empty; send a JSON object", code: "empty_body") }
        let data = Data(buffer.readableBytesView)
        let maxDepth = limits.maxDepth
        // Before parsing: the parser and the checkers recurse, so depth is bounded first.
        @Sendable func parse() throws -> JSONValue {
            if JSONNesting.exceeds(maxDepth, in: data) {
                throw APIError(status: .unprocessableContent, code: "too_deep",
                               message: "the JSON body nests arrays and objects deeper than the limit of \(maxDepth) levels",
                               details: [SpecIssue(path: "body", message: "nests arrays and objects deeper than the limit of \(maxDepth) levels")])
            }
            return try JSONValue.parse(data)
        }
        // A large body takes a while to scan and parse: off the cooperative threads (see `offCooperativePool`); a
        // small one (every spec) parses in microseconds where it is.
        do {
            return data.count > 256 * 1024 ? try await offCooperativePool(parse) : try parse()
        } catch let issue as SpecIssue {
            // Well-formed JSON with a key given twice is a 422 naming the key; anything else is malformed (400).
            if !issue.path.isEmpty { throw APIError.invalid([issue]) }
            throw APIError.badRequest(issue.message, code: "malformed_json")
        }
    }
}
