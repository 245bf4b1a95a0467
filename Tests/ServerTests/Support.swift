import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NeuralNetwork
import Server
import Testing

// MARK: - Files of the repository and of shared/

enum RepositoryFiles {
    /// The package root: this file is <root>/Tests/ServerTests/Support.swift.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `DESCENT_SHARED_DIR` when set, otherwise `shared/` beside the package root.
    static var shared: URL {
        if let path = ProcessInfo.processInfo.environment["DESCENT_SHARED_DIR"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared", isDirectory: true)
    }

    static func dataset(_ name: String) -> URL { shared.appendingPathComponent("datasets").appendingPathComponent(name) }
    static func example(_ name: String) -> URL { packageRoot.appendingPathComponent("examples").appendingPathComponent(name) }
}

// MARK: - An application per test

/// Runs `body` with a fresh folder that is removed afterwards.
func withTemporaryFolder<T>(_ body: (URL) async throws -> T) async throws -> T {
    let folder = FileManager.default.temporaryDirectory
        .appendingPathComponent("descent-server-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    return try await body(folder)
}

/// What the tests change in the server's configuration.
struct ServerOptions: Sendable {
    var runsWorkers = false
    /// False: `:memory:`. True: `<data folder>/descent.sqlite`, as `descent serve` has it.
    var fileDatabase = false
    var maxUploadBytes: Int?
    var maxJSONBytes: Int?
    /// Short waits, so webhook retries happen within a test.
    var webhookRetryDelays: [Duration] = [.milliseconds(50), .milliseconds(100)]
    /// The tests' webhook receivers listen on loopback (`--webhook-allow-private`).
    var webhookAllowsPrivateTargets = true
    /// `--auth on` (tokens: `AuthTests`' `makeToken`, on a file database).
    var requiresAuthentication = false
    /// Any other setting (limits, timeouts).
    var configure: @Sendable (inout ServerConfiguration) -> Void = { _ in }
}

/// Builds the real application (`buildApplication`) on `folder` and runs `test` against it.
func withServer<T>(
    _ options: ServerOptions = ServerOptions(), setup: TestingSetup = .router, folder: URL,
    _ test: @Sendable (APIClient) async throws -> T
) async throws -> T {
    var configuration = ServerConfiguration(dataDirectory: folder)
    configuration.databasePath = options.fileDatabase ? nil : ":memory:"
    configuration.runsWorkers = options.runsWorkers
    configuration.port = 0
    configuration.logLevel = .error
    if let limit = options.maxUploadBytes { configuration.maxUploadBytes = limit }
    if let limit = options.maxJSONBytes { configuration.maxJSONBytes = limit }
    configuration.webhookRetryDelays = options.webhookRetryDelays
    // Generous: the whole suite runs in parallel on two cores.
    configuration.webhookTimeout = 60
    configuration.requiresAuthentication = options.requiresAuthentication
    configuration.webhookAllowsPrivateTargets = options.webhookAllowsPrivateTargets
    options.configure(&configuration)
    let app = try await buildApplication(configuration)
    return try await app.test(setup) { client in
        guard let port = client.port else { return try await test(APIClient(transport: .inProcess(client), folder: folder)) }
        // HummingbirdTesting's live client gives up on a response after 20 s. With the whole suite on two cores a
        // request can wait longer than that for a cooperative thread, so live tests use a client that waits 5 minutes.
        let patient = TestClient(host: "localhost", port: port, configuration: .init(timeout: .seconds(300)))
        patient.connect()
        do {
            let value = try await test(APIClient(transport: .live(patient, port: port), folder: folder))
            try? await patient.shutdown()
            return value
        } catch {
            try? await patient.shutdown()
            throw error
        }
    }
}

/// The same, on a temporary data folder of its own.
func withServer<T>(
    _ options: ServerOptions = ServerOptions(), setup: TestingSetup = .router,
    _ test: @Sendable (APIClient) async throws -> T
) async throws -> T {
    try await withTemporaryFolder { folder in
        try await withServer(options, setup: setup, folder: folder, test)
    }
}

// MARK: - A small client for the API

struct APIClient: Sendable {
    /// How requests reach the application: the framework's client, or a socket to the live port.
    enum Transport: Sendable {
        case inProcess(any TestClientProtocol)
        case live(TestClient, port: Int)
    }

    let transport: Transport
    /// The server's data folder.
    let folder: URL
    /// Sent as `Authorization: Bearer <token>` with every request.
    var token: String? = nil

    var datasetsFolder: URL { folder.appendingPathComponent("datasets", isDirectory: true) }

    /// The live server's port; nil when requests go through the router in process.
    var port: Int? {
        switch transport {
        case .inProcess(let client): client.port
        case .live(_, let port): port
        }
    }

    /// One request as given: no token added.
    func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> APIResponse {
        switch transport {
        case .inProcess(let client):
            let response = try await client.execute(uri: uri, method: method, headers: headers, body: body)
            return APIResponse(head: response.head, body: response.body)
        case .live(let client, _):
            var headers = headers
            headers[.connection] = "keep-alive"
            let response = try await client.execute(TestClient.Request(uri, method: method, authority: "localhost", headers: headers, body: body))
            return APIResponse(head: response.head, body: response.body ?? ByteBuffer())
        }
    }

    /// The same client, sending `token` (nil: none).
    func authorized(_ token: String?) -> APIClient {
        var copy = self
        copy.token = token
        return copy
    }

    private var authorization: HTTPFields {
        guard let token else { return [:] }
        return [.authorization: "Bearer \(token)"]
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> APIResponse {
        var all = authorization
        all.append(contentsOf: headers)
        return try await execute(uri: uri, method: .get, headers: all)
    }

    func delete(_ uri: String) async throws -> APIResponse {
        try await execute(uri: uri, method: .delete, headers: authorization)
    }

    func post(_ uri: String, body: String? = nil, contentType: String? = "application/json",
              headers extra: HTTPFields = [:]) async throws -> APIResponse {
        var headers = authorization
        headers.append(contentsOf: extra)
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: uri, method: .post, headers: headers, body: body.map { ByteBuffer(string: $0) })
    }

    func post(_ uri: String, json: JSONValue, headers: HTTPFields = [:]) async throws -> APIResponse {
        try await post(uri, body: json.encodedString(), headers: headers)
    }

    /// `POST /v1/datasets?<query>` with `data` as the raw body.
    func upload(_ data: Data, query: String, contentType: String? = "text/csv") async throws -> APIResponse {
        var headers = authorization
        if let contentType { headers[.contentType] = contentType }
        return try await execute(uri: "/v1/datasets?\(query)", method: .post, headers: headers, body: ByteBuffer(bytes: data))
    }

    /// Uploads a file of `shared/datasets/` and returns the dataset's JSON (expects 201).
    func uploadShared(_ file: String, name: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        let response = try await upload(try Data(contentsOf: RepositoryFiles.dataset(file)), query: "name=\(name)")
        #expect(response.status == .created, "upload of \(file): \(response.text)", sourceLocation: sourceLocation)
        return try response.json()
    }

    /// Submits a spec and returns the job id (expects 201).
    func submit(_ spec: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let response = try await post("/v1/jobs", json: spec)
        #expect(response.status == .created, "\(response.text)", sourceLocation: sourceLocation)
        return try #require(try response.json()["id"]?.string, sourceLocation: sourceLocation)
    }

    func job(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        let response = try await get("/v1/jobs/\(id)")
        #expect(response.status == .ok, sourceLocation: sourceLocation)
        return try response.json()
    }

    /// Polls `GET /v1/jobs/{id}` until `done(job)` holds; fails after `timeout`.
    func waitForJob(_ id: String, timeout: Duration = .seconds(120), sourceLocation: SourceLocation = #_sourceLocation,
                    until done: (JSONValue) -> Bool) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let job = try await job(id, sourceLocation: sourceLocation)
            if done(job) { return job }
            guard ContinuousClock.now < deadline else {
                Issue.record("job \(id) did not reach the expected state in \(timeout); last seen: \(job.encodedString())",
                             sourceLocation: sourceLocation)
                throw TimedOut()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Polls until the job is succeeded, failed or cancelled.
    func waitUntilFinished(_ id: String, timeout: Duration = .seconds(120),
                           sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSONValue {
        try await waitForJob(id, timeout: timeout, sourceLocation: sourceLocation) { job in
            ["succeeded", "failed", "cancelled"].contains(job["status"]?.string ?? "")
        }
    }

    /// The files of the datasets folder, hidden ones (temporary uploads) included.
    func datasetFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: datasetsFolder.path).sorted()
    }

    /// Asserts that nothing of a failed upload is left: no file in the datasets folder, no row in the store.
    func expectNoDatasetLeft(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try datasetFiles() == [], "stray files in the datasets folder", sourceLocation: sourceLocation)
        let list = try await get("/v1/datasets")
        #expect(list.status == .ok, sourceLocation: sourceLocation)
        #expect(try list.json()["datasets"]?.array?.count == 0, "\(list.text)", sourceLocation: sourceLocation)
    }

    /// Asserts that no job was created.
    func expectNoJob(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let list = try await get("/v1/jobs")
        #expect(try list.json()["jobs"]?.array?.count == 0, "\(list.text)", sourceLocation: sourceLocation)
    }
}

struct TimedOut: Error {}

// MARK: - Responses

/// A response as the tests read it, whichever transport carried it.
struct APIResponse: Sendable {
    let head: HTTPResponse
    let body: ByteBuffer
    var status: HTTPResponse.Status { head.status }
    var headers: HTTPFields { head.headerFields }
}

extension APIResponse {
    var text: String { String(buffer: body) }
    var data: Data { Data(body.readableBytesView) }
    func json() throws -> JSONValue { try JSONValue.parse(data) }
}

/// The error envelope `{"error": {"code", "message", "details"}}`.
struct ErrorEnvelope {
    var code: String
    var message: String
    var details: [(path: String, message: String)]

    var paths: [String] { details.map(\.path) }
    /// The message and every detail, for "does the answer name X" checks.
    var allText: String { ([message] + details.map { "\($0.path): \($0.message)" }).joined(separator: "\n") }
}

/// Checks the status and the envelope; every string of `naming` must appear in the message or a detail.
@discardableResult
func expectError(
    _ response: APIResponse, _ status: HTTPResponse.Status, code: String? = nil, naming: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> ErrorEnvelope {
    #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    let json = try response.json()
    #expect(json.object?.keys.sorted() == ["error"], "\(response.text)", sourceLocation: sourceLocation)
    let error = try #require(json["error"], "no error envelope: \(response.text)", sourceLocation: sourceLocation)
    let errorCode = try #require(error["code"]?.string, "no error.code: \(response.text)", sourceLocation: sourceLocation)
    let message = try #require(error["message"]?.string, "no error.message: \(response.text)", sourceLocation: sourceLocation)
    #expect(!message.isEmpty, sourceLocation: sourceLocation)
    let detailValues = try #require(error["details"]?.array, "no error.details array: \(response.text)", sourceLocation: sourceLocation)
    var details: [(path: String, message: String)] = []
    for detail in detailValues {
        let path = try #require(detail["path"]?.string, "detail without a path: \(response.text)", sourceLocation: sourceLocation)
        let text = try #require(detail["message"]?.string, "detail without a message: \(response.text)", sourceLocation: sourceLocation)
        details.append((path, text))
    }
    if status == .unprocessableContent {
        #expect(!details.isEmpty, "a 422 lists its problems in details: \(response.text)", sourceLocation: sourceLocation)
    }
    if let code { #expect(errorCode == code, "\(response.text)", sourceLocation: sourceLocation) }
    let envelope = ErrorEnvelope(code: errorCode, message: message, details: details)
    for word in naming {
        #expect(envelope.allText.contains(word), "the error does not name \(word): \(response.text)", sourceLocation: sourceLocation)
    }
    return envelope
}

// MARK: - JSON

extension JSONValue {
    /// Parses a JSON literal written in a test.
    init(_ text: String) throws { self = try JSONValue.parse(Data(text.utf8)) }
}

// MARK: - Specs

enum Specs {
    /// A small moons job: 2 → 8 (relu) → 2, `epochs` epochs.
    static func moons(epochs: Int = 3, samples: Int = 400, extra: String = "") throws -> JSONValue {
        try JSONValue("""
            {"name": "moons-test", "dataset": {"builtin": "moons", "samples": \(samples), "seed": 1},
             "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]},
             "training": {"epochs": \(epochs), "batch_size": 32}\(extra.isEmpty ? "" : ", " + extra)}
            """)
    }

    /// A small job on an uploaded iris dataset.
    static func iris(datasetId: String, epochs: Int = 2) throws -> JSONValue {
        try JSONValue("""
            {"dataset": {"id": "\(datasetId)"},
             "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]},
             "training": {"epochs": \(epochs)}}
            """)
    }
}

// MARK: - Prometheus text

/// The value of the sample `name{labels…}` in Prometheus text, nil if absent.
func prometheusValue(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " ") else { continue }
        let series = line[..<space]
        let seriesName = series.prefix { $0 != "{" }
        guard seriesName == name else { continue }
        let labelText = series.dropFirst(seriesName.count)
        guard labels.allSatisfy({ labelText.contains("\($0.key)=\"\($0.value)\"") }) else { continue }
        // Every label of the series must be one we asked for, so {status="queued"} doesn't match a longer series.
        let labelCount = labelText.isEmpty ? 0 : labelText.split(separator: ",").count
        guard labelCount == labels.count else { continue }
        return Double(line[line.index(after: space)...].trimmingCharacters(in: .whitespaces))
    }
    return nil
}
