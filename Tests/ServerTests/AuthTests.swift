import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import NeuralNetwork
import Server
import Testing

/// Two tenants' clients of one server with `--auth on`, and the database their tokens are in
/// (a file, as `descent token create` opens it beside the running server).
struct TwoTenants: Sendable {
    let acme: APIClient
    let globex: APIClient
    /// The same server without a token.
    let anonymous: APIClient
    let database: AppDatabase
    let acmeTokenId: String
}

/// Runs `test` against the real application with auth on and a token for each of two tenants.
func withTwoTenants<T>(
    _ options: ServerOptions = ServerOptions(), setup: TestingSetup = .router,
    _ test: @Sendable (TwoTenants) async throws -> T
) async throws -> T {
    try await withTemporaryFolder { folder in
        let database = try AppDatabase.open(path: folder.appendingPathComponent("descent.sqlite").path)
        let acme = try database.createToken(tenant: "acme")
        let globex = try database.createToken(tenant: "globex")
        var options = options
        options.fileDatabase = true
        options.requiresAuthentication = true
        return try await withServer(options, setup: setup, folder: folder) { api in
            try await test(TwoTenants(acme: api.authorized(acme.token), globex: api.authorized(globex.token), anonymous: api,
                                      database: database, acmeTokenId: acme.record.id))
        }
    }
}

/// Checks a 401: the error envelope with code `unauthorized` and a `WWW-Authenticate: Bearer` challenge.
func expectUnauthorized(_ response: APIResponse, _ route: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    try expectError(response, .unauthorized, code: "unauthorized", sourceLocation: sourceLocation)
    #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true, "\(route): \(response.headers)", sourceLocation: sourceLocation)
}

@Suite("Auth and tenants")
struct AuthTests {
    /// One request of every `/v1` route family, on ids that exist (acme's), so a 401 comes before any lookup.
    static func everyRoute(job: String, dataset: String, study: String) -> [(HTTPRequest.Method, String, String?)] {
        let spec = #"{"dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "dense", "units": 2}]}}"#
        return [
            (.get, "/v1/datasets", nil), (.post, "/v1/datasets?name=x", "a,b\n1,2\n"), (.get, "/v1/datasets/\(dataset)", nil),
            (.delete, "/v1/datasets/\(dataset)", nil),
            (.post, "/v1/jobs", spec), (.post, "/v1/jobs/validate", spec), (.get, "/v1/jobs", nil), (.get, "/v1/jobs/\(job)", nil),
            (.get, "/v1/jobs/\(job)/metrics", nil), (.get, "/v1/jobs/\(job)/events", nil), (.post, "/v1/jobs/\(job)/cancel", nil),
            (.delete, "/v1/jobs/\(job)", nil), (.get, "/v1/jobs/\(job)/model", nil), (.get, "/v1/jobs/\(job)/report", nil),
            (.post, "/v1/jobs/\(job)/predict", #"{"inputs": [[0, 0]]}"#), (.get, "/v1/jobs/\(job)/samples", nil),
            (.post, "/v1/studies", #"{"base": \#(spec), "parameters": {"optimizer.lr": [0.1]}}"#), (.get, "/v1/studies", nil),
            (.get, "/v1/studies/\(study)", nil),
        ]
    }

    /// Acme's dataset, job and study, for routes that take ids.
    static func makeAcmeResources(_ tenants: TwoTenants) async throws -> (job: String, dataset: String, study: String) {
        let dataset = try await tenants.acme.uploadShared("iris.csv", name: "flowers")["id"]?.string ?? ""
        let job = try await tenants.acme.submit(try Specs.moons())
        let study = try await tenants.acme.post("/v1/studies", json: try JSONValue("""
            {"name": "lr", "base": \(try Specs.moons().encodedString()), "parameters": {"optimizer.lr": [0.1]}}
            """))
        #expect(study.status == .created, "\(study.text)")
        return (job, dataset, try study.json()["id"]?.string ?? "")
    }

    @Test("without a token, with an unknown or a revoked one, or another scheme, every /v1 route answers 401 and changes nothing")
    func everyRouteNeedsAValidToken() async throws {
        try await withTwoTenants { tenants in
            let (job, dataset, study) = try await Self.makeAcmeResources(tenants)
            _ = try tenants.database.revokeToken(id: tenants.acmeTokenId)
            let revoked = tenants.acme
            let cases: [(String, HTTPFields)] = [
                ("no token", [:]),
                ("an unknown token", [.authorization: "Bearer \(AccessToken.generate())"]),
                ("a revoked token", [.authorization: "Bearer \(revoked.token!)"]),
                ("basic auth", [.authorization: "Basic YWNtZTpzZWNyZXQ="]),
                ("an empty bearer", [.authorization: "Bearer "]),
                ("the token's hash", [.authorization: "Bearer \(AccessToken.hash(revoked.token!))"]),
            ]
            for (label, headers) in cases {
                for (method, path, body) in Self.everyRoute(job: job, dataset: dataset, study: study) {
                    var all = headers
                    if body != nil { all[.contentType] = path.hasPrefix("/v1/datasets") ? "text/csv" : "application/json" }
                    let response = try await tenants.anonymous.execute(uri: path, method: method, headers: all,
                                                                               body: body.map { ByteBuffer(string: $0) })
                    try expectUnauthorized(response, "\(label): \(method) \(path)")
                }
            }
            // Nothing was created, cancelled or deleted by all that.
            let globex = tenants.globex
            #expect(try await globex.get("/v1/jobs").json()["jobs"]?.array?.count == 0)
            #expect(try tenants.database.job(id: job)?.status == .queued)
            #expect(try tenants.database.dataset(id: dataset) != nil)
            #expect(try tenants.database.listJobs(tenant: "acme", status: nil, limit: 50, cursor: nil).jobs.count == 2)
        }
    }

    @Test("the status page, its files, /healthz, /metrics and /openapi.yaml stay open with auth on")
    func openRoutesStayOpen() async throws {
        try await withTwoTenants { tenants in
            for path in ["/", "/index.html", "/app.js", "/style.css", "/healthz", "/metrics", "/openapi.yaml"] {
                let response = try await tenants.anonymous.get(path)
                #expect(response.status == .ok, "\(path): \(response.status)")
                #expect(response.headers[.wwwAuthenticate] == nil)
            }
        }
    }

    @Test("a valid token is accepted whatever the case of its scheme")
    func bearerSchemeIsCaseInsensitive() async throws {
        try await withTwoTenants { tenants in
            let token = try #require(tenants.acme.token)
            for header in ["Bearer \(token)", "bearer \(token)", "BEARER  \(token)"] {
                let response = try await tenants.anonymous.get("/v1/jobs", headers: [.authorization: header])
                #expect(response.status == .ok, "\(header): \(response.text)")
            }
        }
    }

    @Test("two tenants each see only their own datasets, jobs and studies")
    func tenantsSeeOnlyTheirOwn() async throws {
        try await withTwoTenants { tenants in
            let acme = try await Self.makeAcmeResources(tenants)
            let globexDataset = try #require(try await tenants.globex.uploadShared("iris.csv", name: "flowers")["id"]?.string)
            let globexJob = try await tenants.globex.submit(try Specs.moons())

            func ids(_ client: APIClient, _ path: String, _ key: String) async throws -> Set<String> {
                Set(try await client.get(path).json()[key]?.array?.compactMap { $0["id"]?.string } ?? [])
            }
            #expect(try await ids(tenants.acme, "/v1/datasets", "datasets") == [acme.dataset])
            #expect(try await ids(tenants.globex, "/v1/datasets", "datasets") == [globexDataset])
            #expect(try await ids(tenants.acme, "/v1/jobs", "jobs").count == 2, "its own job and its study's")
            #expect(try await ids(tenants.acme, "/v1/jobs", "jobs").contains(acme.job))
            #expect(try await ids(tenants.globex, "/v1/jobs", "jobs") == [globexJob])
            #expect(try await ids(tenants.globex, "/v1/jobs?status=queued", "jobs") == [globexJob])
            #expect(try await ids(tenants.acme, "/v1/studies", "studies") == [acme.study])
            #expect(try await ids(tenants.globex, "/v1/studies", "studies") == [])
            // A dataset name means the tenant's own dataset of that name.
            var spec = try Specs.iris(datasetId: "unused")
            spec = try JSONValue(spec.encodedString().replacingOccurrences(of: #"{"id":"unused"}"#, with: #"{"name":"flowers"}"#))
            let pinned = try await tenants.globex.job(try await tenants.globex.submit(spec))
            #expect(pinned["spec"]?["dataset"] == ["id": .string(globexDataset)])
        }
    }

    @Test("another tenant's job, dataset and study ids answer 404 exactly like unknown ids, on every route")
    func otherTenantsIdsAreNotFound() async throws {
        try await withTwoTenants(ServerOptions(runsWorkers: true)) { tenants in
            let acme = try await Self.makeAcmeResources(tenants)
            // A succeeded job, so that its model, report and predictions exist for acme.
            let finished = try await tenants.acme.waitUntilFinished(acme.job)
            #expect(finished["status"] == "succeeded")
            #expect(try await tenants.acme.get("/v1/jobs/\(acme.job)/model").status == .ok)
            let unknownJob = makeIdentifier(prefix: "job_"), unknownDataset = makeIdentifier(prefix: "ds_")
            let unknownStudy = makeIdentifier(prefix: "st_")

            let routes: [(HTTPRequest.Method, String, String?)] = [
                (.get, "", nil), (.get, "/metrics", nil), (.get, "/events", nil), (.post, "/cancel", nil), (.delete, "", nil),
                (.get, "/model", nil), (.get, "/model?stage=trained", nil), (.get, "/report", nil),
                (.post, "/predict", #"{"inputs": [[0, 0]]}"#), (.get, "/samples", nil),
            ]
            for (method, suffix, body) in routes {
                func request(_ id: String) async throws -> APIResponse {
                    try await tenants.globex.execute(
                        uri: "/v1/jobs/\(id)\(suffix)", method: method,
                        headers: [.authorization: "Bearer \(tenants.globex.token!)", .contentType: "application/json"],
                        body: body.map { ByteBuffer(string: $0) })
                }
                let other = try await request(acme.job), unknown = try await request(unknownJob)
                let otherError = try expectError(other, .notFound, code: "not_found")
                let unknownError = try expectError(unknown, .notFound, code: "not_found")
                #expect(otherError.message.replacingOccurrences(of: acme.job, with: unknownJob) == unknownError.message, "\(method) \(suffix)")
            }
            for (method, path, unknown) in [(HTTPRequest.Method.get, "/v1/datasets/\(acme.dataset)", "/v1/datasets/\(unknownDataset)"),
                                            (.delete, "/v1/datasets/\(acme.dataset)", "/v1/datasets/\(unknownDataset)"),
                                            (.get, "/v1/studies/\(acme.study)", "/v1/studies/\(unknownStudy)")] {
                let headers: HTTPFields = [.authorization: "Bearer \(tenants.globex.token!)"]
                let otherError = try expectError(try await tenants.globex.execute(uri: path, method: method, headers: headers), .notFound, code: "not_found")
                let unknownError = try expectError(try await tenants.globex.execute(uri: unknown, method: method, headers: headers), .notFound, code: "not_found")
                #expect(otherError.message.replacingOccurrences(of: acme.dataset, with: unknownDataset)
                    .replacingOccurrences(of: acme.study, with: unknownStudy) == unknownError.message, "\(method) \(path)")
            }
            // Acme's things are untouched by globex's attempts.
            #expect(try await tenants.acme.get("/v1/jobs/\(acme.job)").status == .ok)
            #expect(try await tenants.acme.get("/v1/datasets/\(acme.dataset)").status == .ok)
            #expect(try await tenants.acme.get("/v1/jobs/\(acme.job)/model").status == .ok)
        }
    }

    @Test("a spec may not name another tenant's dataset, teacher or transfer source: each reads as unknown")
    func crossTenantReferencesAreRefused() async throws {
        try await withTwoTenants(ServerOptions(runsWorkers: true)) { tenants in
            let acme = try await Self.makeAcmeResources(tenants)
            #expect(try await tenants.acme.waitUntilFinished(acme.job)["status"] == "succeeded")

            let teacher = try await tenants.globex.post("/v1/jobs", json: try Specs.moons(extra: #""distillation": {"teacher_job": "\#(acme.job)"}"#))
            #expect(try expectError(teacher, .unprocessableContent, naming: ["no job with id \(acme.job)"]).paths == ["distillation.teacher_job"])
            let transfer = try await tenants.globex.post("/v1/jobs", json: try Specs.moons(extra: #""init": {"from_job": "\#(acme.job)"}"#))
            #expect(try expectError(transfer, .unprocessableContent, naming: ["no job with id \(acme.job)"]).paths == ["init.from_job"])
            let byId = try await tenants.globex.post("/v1/jobs", json: try Specs.iris(datasetId: acme.dataset))
            #expect(try expectError(byId, .unprocessableContent, naming: ["no dataset with id \(acme.dataset)"]).paths == ["dataset.id"])
            let byName = try await tenants.globex.post("/v1/jobs", body: #"{"dataset": {"name": "flowers"}, "model": {"layers": [{"type": "dense", "units": 3}]}}"#)
            #expect(try expectError(byName, .unprocessableContent, naming: ["no dataset named \"flowers\""]).paths == ["dataset.name"])
            let holdOut = try await tenants.globex.post("/v1/jobs", json: try Specs.moons(extra: #""validation": {"dataset": "\#(acme.dataset)"}"#))
            try expectError(holdOut, .unprocessableContent, naming: ["validation.dataset", "no dataset with id \(acme.dataset)"])
            let study = try await tenants.globex.post("/v1/studies", json: try JSONValue("""
                {"base": \(try Specs.iris(datasetId: acme.dataset).encodedString()), "parameters": {"optimizer.lr": [0.1, 0.01]}}
                """))
            try expectError(study, .unprocessableContent, naming: ["no dataset with id \(acme.dataset)"])
            let labels = try await tenants.globex.upload(Data([0, 0, 8, 1, 0, 0, 0, 1, 0]), query: "format=idx&labels_of=\(acme.dataset)",
                                                         contentType: "application/octet-stream")
            try expectError(labels, .unprocessableContent, naming: ["labels_of", "no dataset with id \(acme.dataset)"])
            #expect(try await tenants.globex.get("/v1/jobs").json()["jobs"]?.array?.count == 0, "nothing was queued for globex")

            // The same references are fine for their owner.
            let own = try await tenants.acme.post("/v1/jobs/validate", json: try Specs.moons(extra: #""init": {"from_job": "\#(acme.job)"}"#))
            #expect(own.status == .ok, "\(own.text)")
        }
    }

    @Test("with auth off every request acts for the default tenant, token or not")
    func authOffIsTheDefaultTenant() async throws {
        try await withTemporaryFolder { folder in
            let database = try AppDatabase.open(path: folder.appendingPathComponent("descent.sqlite").path)
            try await withServer(ServerOptions(fileDatabase: true), folder: folder) { api in
                let job = try await api.submit(try Specs.moons())
                let withToken = api.authorized("not a token at all")
                #expect(try await withToken.get("/v1/jobs/\(job)").status == .ok)
                #expect(try database.job(id: job)?.tenant == Tenant.default)
            }
        }
    }

    @Test("descent serve leaves auth off by default only on loopback addresses")
    func loopbackHosts() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"] {
            #expect(ServerConfiguration.isLoopback(host: host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "127.0.0.1.example.com", "1270.0.0.1", ""] {
            #expect(!ServerConfiguration.isLoopback(host: host), "\(host)")
        }
    }

    @Test("the status page asks for a token on a 401, sends it as a bearer token and keeps it in sessionStorage only")
    func statusPageHandlesTokens() throws {
        let script = try String(contentsOf: RepositoryFiles.packageRoot.appendingPathComponent("public/app.js"), encoding: .utf8)
        #expect(script.contains("error.status === 401"))
        #expect(script.contains(#"Authorization: "Bearer " + state.token"#))
        #expect(script.contains("sessionStorage.setItem(\"descent.token\""))
        #expect(!script.contains("localStorage"), "a token must not outlive the tab")
        #expect(script.contains("if (unauthorized && !state.askedForToken)") && script.contains("setTimeout(askToken, 0)"),
                "the first 401 prompts for a token")
        #expect(script.contains("downloadWithToken(path, fileName)"), "stage downloads send the token too")
    }
}
