import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// The status page in a real browser: Debian's headless Chromium (`make test` installs it) loads the
/// page of a live server after a job has trained. Screenshots are kept in `.build/test-artifacts/`.
@Suite("Status page in headless Chromium")
struct StatusPageBrowserTests {
    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var artifacts: URL { RepositoryFiles.packageRoot.appendingPathComponent(".build/test-artifacts", isDirectory: true) }

    /// The DOM after the page's scripts ran, and a screenshot of it.
    static func load(_ url: String, screenshot name: String) async throws -> String {
        let browser = try #require(chromium, "no chromium: run `make test` (it installs Debian's chromium) or apt-get install chromium")
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("descent-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=\(profile.path)",
                     "--window-size=1300,2200", "--virtual-time-budget=6000"]
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        // A hard limit too: a browser that hangs must fail the test, not the suite.
        let timeout = URL(fileURLWithPath: "/usr/bin/timeout")
        let limit = ["--kill-after=5", "90", browser]
        _ = try await PythonTools.runDetached(timeout, limit + flags + ["--screenshot=\(artifacts.appendingPathComponent(name).path)", url])
        return try await PythonTools.runDetached(timeout, limit + flags + ["--dump-dom", url])
    }

    /// A `descent serve` child process: unlike an in-process server, it answers the browser even while
    /// other tests keep this process's threads busy.
    static func withChildServer(_ body: (ServerProcess) async throws -> Void) async throws {
        try await ServerProcess.withFresh("browser", body)
    }

    @Test("a trained job shows its row, loss and accuracy curves with one point per epoch and split, and a download link")
    func jobPageRendersInChromium() async throws {
        try await Self.withChildServer { server in
            let spec = Data("""
                {"name": "browser-check", "dataset": {"builtin": "moons", "samples": 300},
                 "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]},
                 "training": {"epochs": 5}}
                """.utf8)
            let id = try #require(try await server.json("POST", "/v1/jobs", body: spec)["id"] as? String)
            let job = try await server.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "succeeded")
            let dom = try await Self.load("http://127.0.0.1:\(server.port)/#\(id)", screenshot: "status-page-job.png")
            #expect(dom.contains(id) && dom.contains("browser-check"), "the job's row and title")
            #expect(dom.contains("succeeded"))
            // Train and validation: 5 points each on loss and accuracy, 5 on the learning rate and gradient norm.
            for (chart, points) in [("chart-loss", 10), ("chart-acc", 10), ("chart-lr", 5), ("chart-grad", 5)] {
                #expect(dom.range(of: #"id="\#(chart)"[^>]*data-points="\#(points)""#, options: .regularExpression) != nil
                        || dom.range(of: #"data-points="\#(points)"[^>]*id="\#(chart)""#, options: .regularExpression) != nil,
                        "\(chart) should draw \(points) points")
            }
            #expect(dom.contains(#"href="/v1/jobs/\#(id)/model""#), "the download link")
            #expect(dom.contains(#"href="/v1/jobs/\#(id)/model?format=onnx""#), "the ONNX download link")
            let screenshot = Self.artifacts.appendingPathComponent("status-page-job.png")
            #expect((try? FileManager.default.attributesOfItem(atPath: screenshot.path)[.size] as? Int) ?? 0 > 10_000)
        }
    }
}

@Suite("Live jobs table in headless Chromium")
struct LiveJobsTableBrowserTests {
    struct Sample: Decodable { let row: Bool; let status: String?; let progress: Int?; let label: String?; let events: Int; let stream: String? }
    struct Watch: Decodable { let job: String; let samples: [Sample] }

    @Test("a job submitted while the page is open appears in the table and its row follows every few epochs to succeeded over the event stream")
    func tableFollowsTheEventStream() async throws {
        try await StatusPageBrowserTests.withChildServer { server in
            let browser = try #require(StatusPageBrowserTests.chromium, "no chromium: run `make test`")
            // Long enough (≈ 300 epochs, seconds) to be seen mid-way; the table polls only every 10 s while its stream is open.
            let spec = server.dataFolder.appendingPathComponent("live-row.json")
            try Data(#"{"name": "live-row", "dataset": {"builtin": "moons", "samples": 3000}, "model": {"layers": [{"type": "dense", "units": 128, "activation": "relu"}, {"type": "dense", "units": 128, "activation": "relu"}, {"type": "dense", "units": 2}]}, "training": {"epochs": 300}}"#.utf8)
                .write(to: spec)
            try FileManager.default.createDirectory(at: StatusPageBrowserTests.artifacts, withIntermediateDirectories: true)
            let script = RepositoryFiles.packageRoot.appendingPathComponent("Tests/ServerTests/Browser/watch_job_row.py")
            let output = try await PythonTools.runDetached(URL(fileURLWithPath: "/usr/bin/timeout"), [
                "--kill-after=5", "200", "/usr/bin/env", "python3", script.path, browser, "http://127.0.0.1:\(server.port)", spec.path,
                StatusPageBrowserTests.artifacts.appendingPathComponent("status-page-live-table.png").path, "180",
            ])
            let watch = try JSONDecoder().decode(Watch.self, from: Data(output.utf8))
            let seen = watch.samples.filter(\.row)
            #expect(seen.last?.status == "succeeded", "the row ends succeeded: \(watch.samples)")
            #expect(seen.allSatisfy { $0.stream == "open" }, "the stream stayed open")
            // Intermediate epochs drawn one after the other: only the stream brings them this often.
            let midway = Set(seen.compactMap { $0.status == "running" ? $0.label : nil }.filter { $0 != "epoch 0/300" })
            #expect(midway.count >= 5, "the row showed \(midway.count) intermediate epochs: \(watch.samples)")
            let progress = seen.compactMap(\.progress)
            #expect(progress == progress.sorted(), "progress only grows")
            #expect((seen.last?.events ?? 0) >= 300, "at least one event per epoch arrived")
            print("[figures] live jobs table: \(midway.count) intermediate epochs seen, \(seen.last?.events ?? 0) stream events")
        }
    }
}

@Suite("Spec editor in headless Chromium")
struct SpecEditorBrowserTests {
    @Test("a spec opened with ?spec= and checked shows each 422 problem under the line of the field it names")
    func problemsAppearNextToTheirFields() async throws {
        try await StatusPageBrowserTests.withChildServer { server in
            let port = server.port
            let spec = #"{"dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "dense", "units": -3}]}, "optimizer": {"type": "adam", "lr": 0}}"#
            let query = spec.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? spec
            let dom = try await StatusPageBrowserTests.load("http://127.0.0.1:\(port)/?spec=\(query)&check=1", screenshot: "status-page-editor.png")
            // The editor pretty-prints the spec; "units" is on line 9 and "lr" on line 15 of that text.
            let lines = dom.components(separatedBy: "class=\"line bad\"")
            #expect(lines.count == 3, "two lines marked as bad")
            #expect(dom.contains(#"data-path="model.layers[0].units""#))
            #expect(dom.contains(#"data-path="optimizer.lr""#))
            let unitsLine = try #require(dom.range(of: #"data-line="9""#))
            let unitsProblem = try #require(dom.range(of: #"data-path="model.layers[0].units""#))
            #expect(unitsLine.lowerBound < unitsProblem.lowerBound, "the problem follows its line")
            #expect(dom.contains("2 problems, shown next to their lines"))
        }
    }
}
