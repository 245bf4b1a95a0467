import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PostgresTestSupport
import Testing
@testable import JobStore

/// Several `descent serve` processes on one PostgreSQL queue and one shared data folder.
@Suite("A fleet of servers on one PostgreSQL queue", .serialized)
struct FleetTests {
    /// Starts `count` servers on a fresh database of the test cluster and a fresh shared data folder;
    /// `arguments(i)` adds options for server i. Kills them all afterwards.
    static func withFleet<T>(
        _ count: Int, leaseSeconds: Int = 30, arguments: (Int) -> [String] = { _ in [] }, cluster: PostgresCluster? = nil,
        _ body: ([ServerProcess], PostgresStore) async throws -> T
    ) async throws -> T {
        let cluster = try #require(cluster ?? PostgresCluster.shared, "PostgreSQL 15 is needed (make test installs postgresql-15)")
        let url = try cluster.makeDatabase()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-fleet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let servers = (0..<count).map { index in
            ServerProcess(dataFolder: folder, logFile: folder.appendingPathExtension("node\(index).log"),
                          extraArguments: ["--database", url, "--node-id", "node-\(index)", "--lease-seconds", String(leaseSeconds)]
                              + arguments(index))
        }
        // What the test reads about the queue itself (which node ran what).
        let store = try PostgresStore.open(url: url, nodeId: "test-observer", maxConnections: 2)
        defer {
            for server in servers {
                if let process = server.process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
                try? FileManager.default.removeItem(at: folder.appendingPathExtension("node\(servers.firstIndex { $0 === server }!).log"))
            }
            store.close()
            try? FileManager.default.removeItem(at: folder)
        }
        // (Nodes starting at once, racing to migrate: PostgresFleetStoreTests.)
        for server in servers { try await server.start() }
        return try await body(servers, store)
    }

    static func logs(_ servers: [ServerProcess]) -> String {
        servers.enumerated().map { "--- node-\($0.offset) ---\n\($0.element.log().suffix(4000))" }.joined(separator: "\n")
    }

    static let finished: Set<String> = ["succeeded", "failed", "cancelled"]

    /// A job long enough (seconds) to be interrupted in the middle; checkpointed every epoch.
    static func longJob(epochs: Int) -> Data {
        Data("""
            {"name": "long", "dataset": {"builtin": "moons", "samples": 4000, "seed": 1},
             "model": {"layers": [{"type": "dense", "units": 256, "activation": "relu"},
                                  {"type": "dense", "units": 256, "activation": "relu"}, {"type": "dense", "units": 2}]},
             "training": {"epochs": \(epochs), "batch_size": 8, "seed": 3}}
            """.utf8)
    }

    /// A server with workers (`node-rescuer`) on `node`'s database and data folder, not yet started.
    static func rescuer(joining node: ServerProcess, extraArguments: [String] = []) -> ServerProcess {
        ServerProcess(dataFolder: node.dataFolder, logFile: node.dataFolder.appendingPathExtension("rescuer.log"),
                      extraArguments: ["--database", node.extraArguments[1], "--node-id", "node-rescuer"] + extraArguments)
    }

    /// Kills a rescuer that still runs and removes its log.
    static func stop(_ rescuer: ServerProcess) {
        if let process = rescuer.process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: rescuer.dataFolder.appendingPathExtension("rescuer.log"))
    }

    /// The queue work of the throughput figures: `tiny` measures what each job costs the queue (claim,
    /// data, model file, finish), `small` adds a little training to each.
    enum Work: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case tiny, small
        var testDescription: String { rawValue }

        var spec: Data {
            switch self {
            case .tiny:
                Data("""
                    {"name": "tiny", "dataset": {"builtin": "moons", "samples": 200, "seed": 1},
                     "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 2}]},
                     "training": {"epochs": 1, "batch_size": 32}}
                    """.utf8)
            case .small:
                Data("""
                    {"name": "small", "dataset": {"builtin": "moons", "samples": 2000, "seed": 1},
                     "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"},
                                          {"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 2}]},
                     "training": {"epochs": 10, "batch_size": 16}}
                    """.utf8)
            }
        }

        var epochs: Int { self == .tiny ? 1 : 10 }
    }

    @Test("PostgreSQL restarting under a training job: the job still ends succeeded with every epoch once, and the server answers throughout")
    func databaseRestartMidJob() async throws {
        let cluster = try PostgresCluster.startPrivate()
        defer { cluster.stop() }
        try await Self.withFleet(1, cluster: cluster) { servers, store in
            let id = try await servers[0].json("POST", "/v1/jobs", body: Self.longJob(epochs: 40))["id"] as! String
            _ = try await servers[0].waitForJob(id, timeout: 300) { ($0["epoch"] as? Int ?? 0) >= 2 }
            try cluster.restart(downFor: 3)
            #expect(try await servers[0].request("GET", "/healthz").status == 200)
            let job = try await servers[0].waitForJob(id, timeout: 600) { Self.finished.contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(Self.logs(servers))")
            let metrics = try await servers[0].json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(metrics.compactMap { $0["epoch"] as? Int } == Array(1...40), "every epoch once: \(metrics.count) rows")
            let story = servers[0].log().split(separator: "\n").filter { $0.contains("record") || $0.contains("retrying") || $0.contains("queue") }
            print("[figures] through a PostgreSQL restart, attempt \(job["attempt"] ?? "?"): \(story.map { $0.suffix(160) }.joined(separator: " | "))")
        }
    }

    /// One server is the baseline of the throughput figures in the README.
    @Test("forty jobs submitted round-robin to the servers each run exactly once, spread over the nodes",
          arguments: [3, 1], Work.allCases)
    func fortyJobsRunOnceEach(nodes: Int, work: Work) async throws {
        try await Self.withFleet(nodes) { servers, store in
            let spec = work.spec
            let start = Date()
            // All at once, as forty clients would.
            let ids = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for index in 0..<40 {
                    group.addTask { (index, try await servers[index % nodes].json("POST", "/v1/jobs", body: spec)["id"] as! String) }
                }
                return try await group.reduce(into: [(Int, String)]()) { $0.append($1) }.sorted { $0.0 < $1.0 }.map(\.1)
            }
            for (index, id) in ids.enumerated() {
                // Asked of another server than the one it was submitted to: every node sees the shared queue.
                let job = try await servers[(index + 1) % nodes].waitForJob(id, timeout: 300) { Self.finished.contains($0["status"] as? String ?? "") }
                #expect(job["status"] as? String == "succeeded", "\(job)\n\(Self.logs(servers))")
                #expect(job["attempt"] as? Int == 1, "\(id) ran more than once: \(job)")
                #expect(job["epoch"] as? Int == work.epochs)
            }
            let seconds = Date().timeIntervalSince(start)
            let ranOn = try store.jobNodes()
            let perNode = Dictionary(grouping: ids, by: { ranOn[$0] ?? "none" }).mapValues(\.count)
            print("[figures] fleet of \(nodes), \(work) jobs: 40 in \(String(format: "%.2f", seconds)) s "
                  + "(\(String(format: "%.1f", 40 / seconds)) jobs/s); per node: \(perNode.sorted { $0.key < $1.key })")
            #expect(Set(ranOn.filter { ids.contains($0.key) }.keys) == Set(ids))
            #expect(perNode.keys.allSatisfy { $0.hasPrefix("node-") })
            // The shared counts on /metrics are the same whichever node answers.
            for server in servers {
                let metrics = String(decoding: try await server.request("GET", "/metrics").data, as: UTF8.self)
                #expect(prometheusValue(metrics, "descent_jobs", ["status": "succeeded"]) == 40, "\(metrics.prefix(2000))")
            }
        }
    }

    @Test("kill -9 of the server training a job: another server requeues it after the lease and finishes it from its checkpoint")
    func killedNodesJobFinishesElsewhere() async throws {
        let epochs = 30
        // Node 0 trains it: the others answer the API only, until node 0 is dead, then node 1 starts working.
        try await Self.withFleet(2, leaseSeconds: 3, arguments: { $0 == 0 ? [] : ["--workers", "0"] }) { servers, store in
            let spec = Self.longJob(epochs: epochs)
            let id = try await servers[1].json("POST", "/v1/jobs", body: spec)["id"] as! String
            let running = try await servers[1].waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 2 }
            #expect(running["status"] as? String == "running")
            #expect(try store.jobNodes()[id] == "node-0")
            let killedAt = Date()
            try await servers[0].stop(with: SIGKILL)
            #expect((running["epoch"] as? Int ?? 0) < epochs, "the job finished before it could be killed; make it longer")

            // A third server joins with workers; the lease of node 0 runs out, and one of the live
            // nodes requeues the job and trains it from the checkpoint on the shared data folder.
            let rescuer = Self.rescuer(joining: servers[0], extraArguments: ["--lease-seconds", "3"])
            defer { Self.stop(rescuer) }
            try await rescuer.start()
            let job = try await servers[1].waitForJob(id, timeout: 300) { Self.finished.contains($0["status"] as? String ?? "") }
            print("[figures] killed node's job finished elsewhere \(String(format: "%.1f", Date().timeIntervalSince(killedAt))) s after the kill")
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(Self.logs(servers + [rescuer]))")
            #expect(job["attempt"] as? Int == 2)
            #expect(job["epoch"] as? Int == epochs)
            #expect(try store.jobNodes()[id] == "node-rescuer")
            let rows = try await servers[1].json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...epochs), "every epoch once")
            #expect(rescuer.log().contains("resumed from the checkpoint of epoch"), "\(rescuer.log().suffix(3000))")
        }
    }

    @Test("SIGTERM of the server training a job puts it back in the queue at once (no lease to wait for); another server resumes it")
    func sigtermHandsTheJobOver() async throws {
        let epochs = 30
        try await Self.withFleet(2, leaseSeconds: 60, arguments: { $0 == 0 ? [] : ["--workers", "0"] }) { servers, store in
            let spec = Self.longJob(epochs: epochs)
            let id = try await servers[1].json("POST", "/v1/jobs", body: spec)["id"] as! String
            _ = try await servers[1].waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 2 }
            try await servers[0].stop(with: SIGTERM)
            // Far sooner than the 60 s lease: the node gave the job back as it stopped.
            let requeued = try await servers[1].waitForJob(id, timeout: 10) { $0["status"] as? String == "queued" }
            #expect((requeued["epoch"] as? Int ?? 0) < epochs)

            let rescuer = Self.rescuer(joining: servers[0])
            defer { Self.stop(rescuer) }
            try await rescuer.start()
            let job = try await servers[1].waitForJob(id, timeout: 300) { Self.finished.contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(Self.logs(servers + [rescuer]))")
            #expect(job["attempt"] as? Int == 2 && job["epoch"] as? Int == epochs)
            #expect(try store.jobNodes()[id] == "node-rescuer")
            let rows = try await servers[1].json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...epochs), "every epoch once")
        }
    }

    @Test("a cancel sent to one server stops the job another server trains")
    func cancelCrossesServers() async throws {
        try await Self.withFleet(2, arguments: { $0 == 0 ? [] : ["--workers", "0"] }) { servers, store in
            let spec = Data("""
                {"name": "long", "dataset": {"builtin": "moons", "samples": 4000, "seed": 1},
                 "model": {"layers": [{"type": "dense", "units": 256, "activation": "relu"}, {"type": "dense", "units": 2}]},
                 "training": {"epochs": 200, "batch_size": 8}}
                """.utf8)
            let id = try await servers[1].json("POST", "/v1/jobs", body: spec)["id"] as! String
            _ = try await servers[1].waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 1 }
            #expect(try await servers[1].request("POST", "/v1/jobs/\(id)/cancel").status == 202)
            let job = try await servers[1].waitForJob(id, timeout: 60) { Self.finished.contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "cancelled", "\(job)\n\(Self.logs(servers))")
            #expect((job["epoch"] as? Int ?? 0) < 200)
            #expect(try store.jobNodes()[id] == "node-0")
        }
    }

    @Test("an MPI job submitted to one server trains on another's ranks, which open the fleet's PostgreSQL as the node holding the lease")
    func anMPIJobTrainsInAFleet() async throws {
        let epochs = 5
        try await Self.withFleet(2, arguments: { $0 == 0 ? [] : ["--workers", "0"] }) { servers, store in
            let spec = Data("""
                {"name": "fleet-mpi", "dataset": {"builtin": "moons", "samples": 400, "seed": 1},
                 "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": 2}]},
                 "training": {"epochs": \(epochs), "batch_size": 32, "seed": 3}, "distributed": {"processes": 2}}
                """.utf8)
            let id = try await servers[1].json("POST", "/v1/jobs", body: spec)["id"] as! String
            let job = try await servers[1].waitForJob(id, timeout: 180) { Self.finished.contains($0["status"] as? String ?? "") }
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(Self.logs(servers))")
            #expect(job["attempt"] as? Int == 1)
            let rows = try await servers[1].json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...epochs), "rank 0's epochs, recorded through PostgreSQL")
            #expect(try store.jobNodes()[id] == "node-0")
            #expect(try await servers[1].request("GET", "/v1/jobs/\(id)/model").status == 200)
            // The database URL reaches the ranks in their environment, never on a command line or in a log.
            let mpirunLog = (try? String(contentsOf: servers[0].dataFolder.appendingPathComponent("logs/\(id).attempt1.mpirun.log"),
                                         encoding: .utf8)) ?? ""
            #expect(!servers[0].log().contains("postgres://") && !mpirunLog.contains("postgres://"))
            #expect(servers[0].log().contains("-x DESCENT_DATABASE"), "\(servers[0].log().suffix(2000))")
        }
    }

    @Test("a client of one server follows, to done, a job another server trains")
    func eventsCrossServers() async throws {
        try await Self.withFleet(2, arguments: { $0 == 0 ? [] : ["--workers", "0"] }) { servers, store in
            let spec = Data(try Specs.moons(epochs: 3, samples: 400).encodedString().utf8)
            // The tenant-wide stream of node 1, open before the job exists (curl: it reads the stream as it comes).
            let tenantStream = FileManager.default.temporaryDirectory.appendingPathComponent("descent-fleet-events-\(UUID().uuidString)")
            FileManager.default.createFile(atPath: tenantStream.path, contents: nil)
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-sN", "--max-time", "120", "http://127.0.0.1:\(servers[1].port)/v1/events"]
            curl.standardOutput = try FileHandle(forWritingTo: tenantStream)
            try curl.run()
            defer {
                if curl.isRunning { kill(curl.processIdentifier, SIGKILL) }
                try? FileManager.default.removeItem(at: tenantStream)
            }
            try await Task.sleep(for: .milliseconds(500))
            let id = try await servers[1].json("POST", "/v1/jobs", body: spec)["id"] as! String
            // The job's own stream ends with its done event; node 1 trains nothing. From epoch 0 on, the
            // epochs already stored are replayed first, so every epoch is in it whenever the client came.
            let (status, data) = try await servers[1].request("GET", "/v1/jobs/\(id)/events?last_event_id=0", timeout: 120)
            #expect(status == 200)
            let events = try ServerSentEvent.parse(String(decoding: data, as: UTF8.self))
            #expect(events.last?.event == "done", "\(events.map(\.event))\n\(Self.logs(servers))")
            #expect(events.last?.data["status"] == "succeeded")
            #expect(events.filter { $0.event == "epoch" }.compactMap { $0.data["epoch"]?.int } == [1, 2, 3], "\(events.map(\.event))")
            #expect(try store.jobNodes()[id] == "node-0")

            // The tenant's stream on node 1 saw the job to its end too.
            var tenantEvents: [ServerSentEvent] = []
            for _ in 0..<100 {
                tenantEvents = try ServerSentEvent.parse((try? String(contentsOf: tenantStream, encoding: .utf8)) ?? "")
                if tenantEvents.contains(where: { $0.event == "done" && $0.data["id"]?.string == id }) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let ofJob = tenantEvents.filter { $0.data["id"]?.string == id }
            #expect(ofJob.last?.event == "done", "\(tenantEvents.map(\.event))")
            #expect(ofJob.filter { $0.event == "epoch" }.compactMap { $0.data["epoch"]?.int } == [1, 2, 3])
        }
    }
}
