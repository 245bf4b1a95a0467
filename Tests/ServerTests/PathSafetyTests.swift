import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// Nothing a request names — an id in a path or a spec, a dataset name, a stage — reaches outside
/// the data folder: such names are refused (404 for path ids, 422 otherwise) before any lookup.
@Suite("Path safety")
struct PathSafetyTests {
    /// Ids that try to leave the data folder, as they appear in a path (percent-encoded where needed).
    static let hostilePathIds = [
        "..", "%2e%2e", "..%2f..%2foutside", "%2e%2e%2f%2e%2e%2foutside", "%2Fetc%2Fpasswd", "job_%00aaaaaaaaaaaaaaaaaaa",
        "ds_..%2f..%2f..%2foutside", "job_aaaaaaaaaaaaaaaaaaa%00", "JOB_AAAAAAAAAAAAAAAAAAAA", "job_aaaaaaaaaaaaaaaaaaaa.safetensors",
        "job_aaaaaaaaaaaaaaaaaaaaa", "..%5c..%5coutside",
    ]

    /// Every file under `root`, with its size, so a test can tell that nothing was written, moved or removed.
    static func snapshot(_ root: URL) -> [String: Int] {
        var files: [String: Int] = [:]
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.fileSizeKey]) else { return files }
        for case let url as URL in walker {
            files[url.path] = (try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? -1
        }
        return files
    }

    /// A data folder `<root>/data` with bait beside it: files a traversal from `models/` or
    /// `datasets/` would reach, named as the server would name its own.
    static func withBaitedServer(_ options: ServerOptions = ServerOptions(), _ test: @Sendable (APIClient, URL) async throws -> Void) async throws {
        try await withTemporaryFolder { root in
            let data = root.appendingPathComponent("data", isDirectory: true)
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            for name in ["outside.safetensors", "outside.report.json", "outside.csv", "outside"] {
                try Data("secret bait".utf8).write(to: root.appendingPathComponent(name))
            }
            try await withServer(options, folder: data) { api in try await test(api, root) }
        }
    }

    @Test("hostile ids in paths answer 404 on every route, serve no file and touch none")
    func hostilePathIdsAreNotFound() async throws {
        try await Self.withBaitedServer { api, root in
            let before = Self.snapshot(root)
            for id in Self.hostilePathIds {
                let routes: [(HTTPRequest.Method, String)] = [
                    (.get, "/v1/jobs/\(id)"), (.delete, "/v1/jobs/\(id)"), (.get, "/v1/jobs/\(id)/model"), (.get, "/v1/jobs/\(id)/report"),
                    (.post, "/v1/jobs/\(id)/cancel"), (.post, "/v1/jobs/\(id)/predict"), (.get, "/v1/jobs/\(id)/metrics"),
                    (.get, "/v1/jobs/\(id)/events"), (.get, "/v1/jobs/\(id)/samples"),
                    (.get, "/v1/datasets/\(id)"), (.delete, "/v1/datasets/\(id)"), (.get, "/v1/studies/\(id)"),
                ]
                for (method, path) in routes {
                    let response = try await api.execute(uri: path, method: method, headers: [.contentType: "application/json"],
                                                                body: method == .post ? ByteBuffer(string: #"{"inputs": [[0]]}"#) : nil)
                    #expect(response.status == .notFound, "\(method) \(path): \(response.status) \(response.text)")
                    #expect(!response.text.contains("secret bait"), "\(method) \(path)")
                }
            }
            #expect(Self.snapshot(root) == before, "a request changed files")
        }
    }

    @Test("static files cannot be reached outside the status page's folder")
    func staticFilesStayInTheirFolder() async throws {
        try await Self.withBaitedServer { api, _ in
            for path in ["/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                         "/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/%2Fetc%2Fpasswd", "/app.js%00.html", "/../Package.swift"] {
                let response = try await api.get(path)
                #expect(response.status == .notFound, "\(path): \(response.status)")
                #expect(!response.text.contains("root:"), "\(path)")
            }
        }
    }

    @Test("a stage that is not a stage name is a 422 naming stage, and no file is read")
    func hostileStagesAreRefused() async throws {
        try await Self.withBaitedServer(ServerOptions(runsWorkers: true)) { api, root in
            let id = try await api.submit(try Specs.moons(epochs: 1))
            #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
            // Bait where `models/<id>.<stage>.safetensors` would lead with these stages.
            try Data("secret bait".utf8).write(to: root.appendingPathComponent("data/models/\(id).x.safetensors"))
            let before = Self.snapshot(root)
            for stage in ["../../../outside", "%2e%2e%2f%2e%2e%2f%2e%2e%2foutside", "/etc/passwd", "%2Fetc%2Fpasswd", "trained%00", "x",
                          "trained/../x", "TRAINED", "..", "", "x.safetensors"] {
                let response = try await api.get("/v1/jobs/\(id)/model?stage=\(stage)")
                try expectError(response, .unprocessableContent, naming: ["stage"])
                #expect(!response.text.contains("secret bait"), "\(stage)")
            }
            #expect(try await api.get("/v1/jobs/\(id)/model?stage=trained").status == .ok, "a real stage still works")
            #expect(Self.snapshot(root) == before)
        }
    }

    @Test("a dataset name with a path, a NUL byte or control characters is a 422 naming name, and nothing is stored")
    func hostileDatasetNamesAreRefused() async throws {
        try await Self.withBaitedServer { api, root in
            let before = Self.snapshot(root)
            let csv = Data("a,b\n1,2\n3,4\n".utf8)
            for name in ["../../outside", "%2e%2e%2f%2e%2e%2foutside", "/etc/passwd", "a%00b", "a%2fb", "..", "a%5cb", "tab%09name", "%0a"] {
                let response = try await api.upload(csv, query: "name=\(name)")
                try expectError(response, .unprocessableContent, naming: ["name"])
            }
            try await api.expectNoDatasetLeft()
            #expect(Self.snapshot(root) == before)
            // An ordinary name with dots and spaces is fine.
            #expect(try await api.upload(csv, query: "name=digits%20v1.2").status == .created)
        }
    }

    @Test("hostile ids in a spec or an upload's query are 422s naming the field, as unknown ids are")
    func hostileIdsInSpecsAreRefused() async throws {
        try await Self.withBaitedServer { api, root in
            let before = Self.snapshot(root)
            for id in ["../../outside", "/etc/passwd", "ds_\u{0}aaaaaaaaaaaaaaaaaaa", "ds_../../../../outside", "job_../../outside", ""] {
                let quoted = JSONValue.string(id).encodedString()
                let byDataset = try await api.post("/v1/jobs", body: #"{"dataset": {"id": \#(quoted)}, "model": {"layers": [{"type": "dense", "units": 2}]}}"#)
                try expectError(byDataset, .unprocessableContent, naming: ["dataset"])
                for extra in [#""init": {"from_job": \#(quoted)}"#, #""distillation": {"teacher_job": \#(quoted)}"#,
                              #""validation": {"dataset": \#(quoted)}"#] {
                    let response = try await api.post("/v1/jobs", json: try Specs.moons(extra: extra))
                    try expectError(response, .unprocessableContent)
                }
                let query = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id
                let labels = try await api.upload(Data([0, 0, 8, 1, 0, 0, 0, 1, 0]), query: "format=idx&labels_of=\(query)",
                                                  contentType: "application/octet-stream")
                try expectError(labels, .unprocessableContent, naming: ["labels_of"])
            }
            try await api.expectNoJob()
            try await api.expectNoDatasetLeft()
            #expect(Self.snapshot(root) == before)
        }
    }
}
