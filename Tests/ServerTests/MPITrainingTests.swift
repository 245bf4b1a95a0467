import Foundation
#if canImport(Glibc)
import Glibc
#endif
import JobStore
import NeuralNetwork
import Testing
import Workers

/// Whether the server can start MPI jobs here: `make test` installs Open MPI, so in CI it can.
enum MPIRun {
    static var isInstalled: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/mpirun") }
    }

    static let missing: Comment = "mpirun is not installed (make test installs openmpi-bin and libopenmpi-dev)"
}

/// `distributed: {"processes": N}`: the server runs the job as `mpirun -n N descent worker …` (Open MPI on
/// loopback, as `make test` installs it). Real processes, real mpirun, a real rank killed.
@Suite("MPI data parallelism through a live server", .serialized, .enabled(if: MPIRun.isInstalled, MPIRun.missing))
struct MPITrainingTests {
    /// ‖w_mpi − w_single‖₂ / ‖w_single‖₂ for every tensor, after one epoch: the same bound as for in-process
    /// replicas (the sums of the shards' gradients differ from the whole batch's in float rounding only).
    static let tolerance = 1e-5

    /// The digits job of the in-process replica tests (SGD with momentum, batches of 32 over 1437 rows).
    static func spec(epochs: Int = 1, distributed: String? = nil, name: String = "mpi") -> Data {
        Data("""
            {"name": "\(name)", "dataset": {"name": "digits"}, "validation": {"split": 0.2},
             "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dense", "units": 10}]},
             "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
             "training": {"epochs": \(epochs), "batch_size": 32, "seed": 7}\(distributed.map { #", "distributed": \#($0)"# } ?? "")}
            """.utf8)
    }

    private func withServer(_ body: (ServerProcess) async throws -> Void) async throws {
        try await ServerProcess.withFresh("mpi") { server in
            let csv = try Data(contentsOf: RepositoryFiles.dataset("digits.csv"))
            _ = try await server.json("POST", "/v1/datasets?name=digits", body: csv, contentType: "text/csv")
            try await body(server)
        }
    }

    private func finished(_ job: [String: Any]) -> Bool { ["succeeded", "failed", "cancelled"].contains(job["status"] as? String ?? "") }

    @Test("Two MPI ranks train a digits job to the single-process run's weights (≤ 1e-5 relative per tensor), with metrics and a model of the same format")
    func twoRanksMatchTheSingleProcessRun() async throws {
        try await withServer { server in
            let single = try await server.json("POST", "/v1/jobs", body: Self.spec())["id"] as! String
            let ranks = try await server.json("POST", "/v1/jobs", body: Self.spec(distributed: #"{"processes": 2}"#))["id"] as! String
            let singleJob = try await server.waitForJob(single, until: finished)
            let ranksJob = try await server.waitForJob(ranks, until: finished)
            #expect(singleJob["status"] as? String == "succeeded", "\(singleJob)")
            #expect(ranksJob["status"] as? String == "succeeded", "\(ranksJob)\n\(server.log())")
            #expect((ranksJob["spec"] as? [String: Any])?["distributed"] as? [String: Any] != nil)

            // Metrics: the same rows with the same keys, and the same training loss.
            let singleRows = try await server.json("GET", "/v1/jobs/\(single)/metrics")["epochs"] as? [[String: Any]] ?? []
            let ranksRows = try await server.json("GET", "/v1/jobs/\(ranks)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(ranksRows.count == 1 && singleRows.count == 1)
            #expect(ranksRows.map { Set($0.keys) } == singleRows.map { Set($0.keys) })
            if let a = ranksRows.first?["train_loss"] as? Double, let b = singleRows.first?["train_loss"] as? Double {
                print("[figures] MPI 2 ranks vs 1 process, digits 1 epoch: train loss \(a) vs \(b)")
                #expect(abs(a - b) <= Self.tolerance * abs(b))
            } else {
                Issue.record("no train_loss: \(ranksRows) \(singleRows)")
            }
            #expect(ranksRows.first?["train_accuracy"] as? Double == singleRows.first?["train_accuracy"] as? Double)

            // The model: the same tensors and metadata, weights within the tolerance.
            let singleFile = try SafeTensorsFile.parse(try await server.request("GET", "/v1/jobs/\(single)/model").data)
            let ranksFile = try SafeTensorsFile.parse(try await server.request("GET", "/v1/jobs/\(ranks)/model").data)
            #expect(ranksFile.tensors.map(\.name) == singleFile.tensors.map(\.name))
            #expect(ranksFile.tensors.map(\.shape) == singleFile.tensors.map(\.shape))
            #expect(Set(ranksFile.metadata.keys) == Set(singleFile.metadata.keys))
            #expect(ranksFile.metadata["architecture"] == singleFile.metadata["architecture"])
            var worst = 0.0
            for (a, b) in zip(ranksFile.tensors, singleFile.tensors) {
                var difference = 0.0, reference = 0.0
                for (u, v) in zip(a.values, b.values) {
                    difference += (Double(u) - Double(v)) * (Double(u) - Double(v))
                    reference += Double(v) * Double(v)
                }
                let relative = (difference / max(reference, 1e-30)).squareRoot()
                worst = max(worst, relative)
                #expect(relative <= Self.tolerance, "\(a.name): relative difference \(relative)")
            }
            print("[figures] MPI 2 ranks vs 1 process, digits 1 epoch: largest relative weight difference per tensor \(worst)")
            // Predictions come from the MPI-trained model like any other.
            let predicted = try await server.json("POST", "/v1/jobs/\(ranks)/predict", body: Data(#"{"inputs": [[\#(Array(repeating: "0", count: 64).joined(separator: ","))]]}"#.utf8))
            #expect((predicted["predictions"] as? [Any])?.count == 1)
        }
    }

    @Test("kill -9 of one rank mid-training ends the attempt within seconds, the server keeps answering, and the retry completes every epoch once")
    func aKilledRankIsRetriedFromTheCheckpoint() async throws {
        try await withServer { server in
            // Long enough to be killed in the middle on a fast machine (an epoch of this job takes 5–30 ms).
            let epochs = 1000
            let id = try await server.json("POST", "/v1/jobs", body: Self.spec(epochs: epochs, distributed: #"{"processes": 2}"#))["id"] as! String
            let running = try await server.waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 2 || self.finished($0) }
            try #require(running["status"] as? String == "running", "the job ended before it could be interrupted: \(running)")
            let ranks = Self.rankProcesses(of: id)
            #expect(ranks.count == 2, "rank processes: \(ranks)")
            guard let victim = ranks.last else { return }
            let killedAt = Date()
            kill(victim, SIGKILL)
            // The attempt ends (mpirun aborts the job) and the job goes back to the queue: attempt 2.
            _ = try await server.waitForJob(id, timeout: 60) { ($0["attempt"] as? Int ?? 1) >= 2 || self.finished($0) }
            print("[figures] MPI rank killed: attempt 2 started \(String(format: "%.1f", Date().timeIntervalSince(killedAt))) s later")
            #expect(try await server.request("GET", "/healthz").status == 200)
            #expect(!Self.isAlive(victim))
            let job = try await server.waitForJob(id, timeout: 900, until: finished)  // minutes on a slow host sharing two cores with the suite
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(server.log())")
            #expect(job["attempt"] as? Int == 2)
            let rows = try await server.json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...epochs), "every epoch once")
            // Rank 0 of the second attempt logged (into mpirun's output) that it went on from the checkpoint.
            let retryLog = (try? String(contentsOf: server.dataFolder.appendingPathComponent("logs/\(id).attempt2.mpirun.log"), encoding: .utf8)) ?? ""
            #expect(retryLog.contains("resumed from the checkpoint of epoch"), "attempt 2's log: \(retryLog.suffix(2000))")
            // Rank 0 records the end before the ranks finalize and exit: they go within seconds.
            try await Self.waitUntilNoRanks(of: id)
            #expect(Self.rankProcesses(of: id).isEmpty, "no rank outlives its job")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: server.dataFolder.appendingPathComponent("checkpoints").path)) ?? []
            #expect(left.isEmpty, "\(left)")
        }
    }

    @Test("Cancelling an MPI job stops its processes and the job ends cancelled")
    func cancellingStopsTheRanks() async throws {
        try await withServer { server in
            let id = try await server.json("POST", "/v1/jobs", body: Self.spec(epochs: 2000, distributed: #"{"processes": 2}"#))["id"] as! String
            _ = try await server.waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 1 || self.finished($0) }
            _ = try await server.request("POST", "/v1/jobs/\(id)/cancel")
            let job = try await server.waitForJob(id, timeout: 30, until: finished)
            #expect(job["status"] as? String == "cancelled", "\(job)")
            try await Self.waitUntilNoRanks(of: id)
            #expect(Self.rankProcesses(of: id).isEmpty, "ranks left running")
        }
    }

    static func waitUntilNoRanks(of job: String, timeout: TimeInterval = 15) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !rankProcesses(of: job).isEmpty, Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
    }

    @Test("SIGTERM to the server stops the MPI processes with it and requeues the job; the next start resumes it to the end")
    func aServerShutdownRequeuesTheMPIJob() async throws {
        try await withServer { server in
            let epochs = 1000  // seconds of training: the SIGTERM must find it running
            let id = try await server.json("POST", "/v1/jobs", body: Self.spec(epochs: epochs, distributed: #"{"processes": 2}"#))["id"] as! String
            let running = try await server.waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 2 || self.finished($0) }
            try #require(running["status"] as? String == "running", "the job ended before it could be interrupted: \(running)")
            let seconds = try await server.stop(with: SIGTERM)
            print("[figures] server with a running MPI job stopped \(String(format: "%.1f", seconds)) s after SIGTERM")
            try await Self.waitUntilNoRanks(of: id)
            #expect(Self.rankProcesses(of: id).isEmpty, "ranks outlived the server")
            try await server.start()
            let job = try await server.waitForJob(id, timeout: 900, until: finished)  // minutes on a slow host sharing two cores with the suite
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(server.log())")
            #expect(job["attempt"] as? Int == 2, "\(job)\n\(server.log())")
            let rows = try await server.json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...epochs), "every epoch once")
        }
    }

    @Test("kill -9 of the server mid-job: after a restart the job ends succeeded with every epoch once, and no rank of the orphaned attempt is left")
    func aServerKilledMidJobLeavesNoMess() async throws {
        try await withServer { server in
            // mpirun runs in its own process group, so it outlives a server killed with -9: either it finishes the
            // job before the restarted server looks, or the server requeues the job and the orphaned attempt
            // stops at its next write (AttemptScopedJobs, tested deterministically in MPIAttemptTests).
            let epochs = 40
            let spec = Data("""
                {"name": "orphan", "dataset": {"name": "digits"}, "validation": {"split": 0.2},
                 "model": {"layers": [{"type": "dense", "units": 384, "activation": "relu"}, {"type": "dense", "units": 384, "activation": "relu"},
                                      {"type": "dense", "units": 10}]},
                 "optimizer": {"type": "adam", "lr": 0.0005}, "training": {"epochs": \(epochs), "batch_size": 8, "seed": 11},
                 "distributed": {"processes": 2}}
                """.utf8)
            let id = try await server.json("POST", "/v1/jobs", body: spec)["id"] as! String
            let running = try await server.waitForJob(id, timeout: 120) { ($0["epoch"] as? Int ?? 0) >= 2 || self.finished($0) }
            try #require(running["status"] as? String == "running", "the job ended before it could be interrupted: \(running)")
            let orphans = Self.rankProcesses(of: id)
            #expect(orphans.count == 2)
            try await server.stop(with: SIGKILL)
            try await server.start()
            let job = try await server.waitForJob(id, timeout: 900, until: finished)  // minutes on a slow host sharing two cores with the suite
            #expect(job["status"] as? String == "succeeded", "\(job)\n\(server.log())")
            let rows = try await server.json("GET", "/v1/jobs/\(id)/metrics")["epochs"] as? [[String: Any]] ?? []
            #expect(rows.compactMap { $0["epoch"] as? Int } == Array(1...epochs), "every epoch once")
            let deadline = Date().addingTimeInterval(30)
            while orphans.contains(where: Self.isAlive), Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!orphans.contains(where: Self.isAlive), "the first attempt's ranks still run")
            try await Self.waitUntilNoRanks(of: id)
            #expect(Self.rankProcesses(of: id).isEmpty)
        }
    }

    /// The `descent worker --job <id>` processes (the ranks, not mpirun).
    static func rankProcesses(of job: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.sorted().filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.count > 2, !(arguments.first ?? "").hasSuffix("mpirun") else { return false }
            return arguments.contains("worker") && arguments.contains(job) && isAlive(pid)
        }
    }

    /// Running (not a zombie waiting for its parent).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return !status.contains("State:\tZ")
    }
}

/// What a server that cannot run MPI ranks does with an MPI job: fail it, saying why, and go on serving.
@Suite("MPI jobs a server cannot start")
struct MPIJobRefusalTests {
    @Test("An MPI job on a server whose database is in memory fails at once with a message saying why")
    func inMemoryDatabaseFailsMPIJobs() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let spec = #"{"dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "dense", "units": 2}]}, "training": {"epochs": 1}, "distributed": {"processes": 2}}"#
            let submitted = try await api.post("/v1/jobs", body: spec)
            #expect(submitted.status == .created)
            let id = try #require(try submitted.json()["id"]?.string)
            let job = try await api.waitForJob(id) { ["succeeded", "failed", "cancelled"].contains($0["status"]?.string ?? "") }
            #expect(job["status"] == "failed")
            #expect(job["attempt"]?.int == 1, "not retried: the next attempt would fail the same way")
            #expect(job["error"]?["message"]?.string?.contains("in memory") == true, "\(job["error"]?.encodedString() ?? "")")
            #expect(job["spec"]?["distributed"]?["processes"]?.int == 2)
            #expect(try await api.get("/healthz").status == .ok)
        }
    }
}

/// Rank 0's view of the store (`AttemptScopedJobs`): once its attempt is no longer the job's, it cannot write.
@Suite("An MPI attempt's writes to the store")
struct MPIAttemptTests {
    @Test("Once the job was requeued and claimed again, the old attempt can neither record an epoch, rewind, requeue nor finish it")
    func aSupersededAttemptCannotWrite() throws {
        let database = try AppDatabase.inMemory()
        let created = try database.createJob(NewJob(name: "mpi", datasetId: "builtin:moons", spec: #"{"dataset":{"builtin":"moons"},"model":{"preset":"mlp"}}"#,
                                                     epochs: 2)).job
        let first = try #require(try database.claimNextJob())
        #expect(first.id == created.id && first.attempt == 1)
        let scoped = AttemptScopedJobs(base: database, jobId: first.id, attempt: first.attempt)
        let row = MetricsRow(jobId: first.id, epoch: 1, trainLoss: 1, trainAccuracy: nil, valLoss: nil, valAccuracy: nil, lr: 0.1, gradNorm: 1,
                             penalty: 0, sparsity: 0, seconds: 1, samplesPerSecond: 1)
        try scoped.recordEpoch(row, progress: 0.5, latest: "{}")  // its own attempt: allowed

        // The server died and a new one requeued the job and claimed it again.
        #expect(try database.requeueInterruptedJobs() == 1)
        let second = try #require(try database.claimNextJob())
        #expect(second.attempt == 2)
        var epoch2 = row
        epoch2.epoch = 2
        #expect(throws: JobStoreError.self) { try scoped.recordEpoch(epoch2, progress: 1, latest: "{}", checkpointEpoch: nil) }
        #expect(throws: JobStoreError.self) { try scoped.rewindJob(id: first.id, toEpoch: 0) }
        #expect(throws: JobStoreError.self) { try scoped.requeueJob(id: first.id) }
        #expect(throws: JobStoreError.self) {
            try scoped.finishJob(id: first.id, status: .failed, errorCode: "x", errorMessage: "x", result: nil, bestEpoch: nil, stoppedEarly: false)
        }
        let job = try #require(try database.job(id: first.id))
        #expect(job.status == .running && job.attempt == 2)
        #expect(try database.metrics(jobId: first.id).map(\.epoch) == [1])
        // The current attempt writes as usual.
        let current = AttemptScopedJobs(base: database, jobId: second.id, attempt: second.attempt)
        try current.recordEpoch(epoch2, progress: 1, latest: "{}")
        #expect(try database.metrics(jobId: first.id).map(\.epoch) == [1, 2])
    }
}
