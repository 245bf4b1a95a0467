import Foundation
#if canImport(Glibc)
import Glibc
#endif
import JobStore
import Logging
import NeuralNetwork
import Training

/// How the server starts the ranks of `distributed.processes` jobs.
public struct MPIConfiguration: Sendable {
    /// The mpirun to run (looked up on PATH): Debian's openmpi-bin.
    public var mpirun = "mpirun"
    /// The `descent` executable the ranks run (`descent worker`); nil: this process's own executable.
    public var workerExecutable: String?
    /// The database the ranks open: a SQLite file or a fleet's `postgres://` URL (handed to mpirun in
    /// the environment, `DESCENT_DATABASE`, so its password shows in no command line or log). Nil: an
    /// in-memory database, which cannot be shared, so such a server fails MPI jobs with a message saying so.
    public var databasePath: String?
    /// A fleet node's id: rank 0 writes as this node, which holds the job's lease (nil for SQLite).
    public var nodeId: String?
    /// Seconds without a new epoch (or, before the first, since the start) after which the ranks are
    /// presumed hung: mpirun is killed and the job retried from its checkpoint.
    public var stallTimeout: Double = 600
    /// Seconds between SIGTERM and SIGKILL when mpirun must go.
    public var killGrace: Double = 5

    public init(mpirun: String = "mpirun", workerExecutable: String? = nil, databasePath: String? = nil, nodeId: String? = nil,
                stallTimeout: Double = 600) {
        self.mpirun = mpirun
        self.workerExecutable = workerExecutable
        self.databasePath = databasePath
        self.nodeId = nodeId
        self.stallTimeout = stallTimeout
    }
}

/// Trains a `distributed.processes` job as `mpirun -n N … descent worker --job ID`, from the worker
/// thread that claimed it: rank 0 records epochs, checkpoints and the outcome in the same database, and
/// this thread watches. It relays the ranks' epochs to the event hub, kills the process group on
/// cancellation, shutdown or a stall, and maps how mpirun ended to the job's state: a rank that dies
/// makes Open MPI end the whole job with a non-zero status, and the job is retried from its checkpoint
/// while attempts remain. mpirun runs in a process group of its own, so killing it kills the local ranks too.
struct MPIJobLauncher: Sendable {
    /// The environment variable that carries a PostgreSQL URL to `descent worker`.
    static let databaseVariable = DistributedWorker.databaseVariable

    let configuration: MPIConfiguration
    let dataDirectory: URL
    let jobs: any JobRepository
    let events: JobEventHub
    let logger: Logger

    func isDistributed(_ job: JobRecord) -> Bool {
        (try? JobSpec.parse(Data(job.spec.utf8)))?.distributed?.processes != nil
    }

    /// The command line, mpirun's options first.
    func arguments(for job: JobRecord, distributed: DistributedSpec, databasePath: String, executable: String) -> [String] {
        let processes = distributed.processes ?? 1
        var arguments = [configuration.mpirun, "-n", "\(processes)",
                         // Containers often lack shared-memory transports; TCP (loopback on one machine) always works.
                         "--mca", "btl", "self,tcp", "--bind-to", "none", "--oversubscribe"]
        if getuid() == 0 { arguments.append("--allow-run-as-root") }
        if !distributed.hosts.isEmpty { arguments += ["--host", distributed.hosts.map(\.text).joined(separator: ",")] }
        // The cores of this machine shared by its ranks (OpenBLAS threads per rank).
        let local = distributed.hosts.isEmpty ? processes : max(1, distributed.hosts.first?.slots ?? 1)
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount / max(local, 1))
        // A PostgreSQL URL travels in the environment (`-x` exports it to every rank), a file path as an argument.
        if PostgresStore.isPostgresURL(databasePath) { arguments += ["-x", Self.databaseVariable] }
        arguments += [executable, "worker", "--job", job.id, "--data-dir", dataDirectory.path]
        if !PostgresStore.isPostgresURL(databasePath) { arguments += ["--database", databasePath] }
        if let nodeId = configuration.nodeId { arguments += ["--node-id", nodeId] }
        arguments += ["--blas-threads", "\(threads)"]
        return arguments
    }

    func run(_ job: JobRecord, runner: JobRunner, stopCheck: @escaping @Sendable () -> StopReason?) {
        var logger = logger
        logger[metadataKey: "job"] = "\(job.id)"
        events.publish(.status(jobId: job.id, status: .running))
        if job.attempt > job.maxAttempts {
            runner.finish(job, .failed, code: "too_many_attempts",
                          message: "the job was interrupted \(job.attempt - 1) times (max_attempts \(job.maxAttempts))")
            return
        }
        guard let distributed = (try? JobSpec.parse(Data(job.spec.utf8)))?.distributed else { return }
        guard let databasePath = configuration.databasePath else {
            runner.finish(job, .failed, code: "invalid_spec",
                          message: "distributed.processes: this server keeps its database in memory, which MPI ranks cannot open")
            return
        }
        let executable = configuration.workerExecutable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let logs = dataDirectory.appendingPathComponent("logs", isDirectory: true)
        try? FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let logFile = logs.appendingPathComponent("\(job.id).attempt\(job.attempt).mpirun.log")
        let arguments = arguments(for: job, distributed: distributed, databasePath: databasePath, executable: executable)
        logger.info("training job on \(distributed.processes ?? 1) MPI processes (attempt \(job.attempt)): \(arguments.joined(separator: " "))")
        events.publish(.log(jobId: job.id, message: "starting \(distributed.processes ?? 1) MPI processes (attempt \(job.attempt))"))

        let process: ProcessGroup
        let environment = PostgresStore.isPostgresURL(databasePath) ? [Self.databaseVariable: databasePath] : [:]
        do { process = try ProcessGroup.spawn(arguments, environment: environment, output: logFile.path) } catch {
            // Not transient: a retry would meet the same missing mpirun.
            runner.finish(job, .failed, code: "mpi_unavailable",
                          message: "could not start \(configuration.mpirun) (Open MPI's openmpi-bin: make serve installs it): \(error)")
            return
        }
        var relayed = (try? jobs.metrics(jobId: job.id).count) ?? 0
        var lastProgress = Date()
        var lastPoll = Date.distantPast
        var ending: Ending = .exited
        let epochs = (try? JobSpec.parse(Data(job.spec.utf8)))?.plannedEpochs ?? 1
        while process.poll() == nil {
            if let reason = stopCheck() {
                ending = reason == .cancelled ? .cancelled : .shutdown
            } else if Date().timeIntervalSince(lastPoll) >= 0.5 {
                lastPoll = Date()
                if (try? jobs.isCancelRequested(id: job.id)) == true { ending = .cancelled }
                // Rank 0 writes the epochs to the store; this process's subscribers hear of them here.
                if let rows = try? jobs.metrics(jobId: job.id), rows.count != relayed {
                    for row in rows.dropFirst(min(relayed, rows.count)) {
                        events.publish(.epoch(jobId: job.id, metrics: row.epochMetrics, epochs: epochs))
                    }
                    relayed = rows.count
                    lastProgress = Date()
                }
                if Date().timeIntervalSince(lastProgress) > configuration.stallTimeout { ending = .stalled }
            }
            if ending != .exited {
                process.terminate(grace: configuration.killGrace)
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let status = process.wait()
        let record = try? jobs.job(id: job.id)
        if let record, [.succeeded, .failed, .cancelled].contains(record.status) {
            // Rank 0 finished the job.
            if let rows = try? jobs.metrics(jobId: job.id) {
                for row in rows.dropFirst(min(relayed, rows.count)) { events.publish(.epoch(jobId: job.id, metrics: row.epochMetrics, epochs: epochs)) }
            }
            events.publish(.done(jobId: job.id, status: record.status))
            logger.info("MPI job ended \(record.status) (mpirun: \(status))")
            return
        }
        if record?.status == .queued {  // rank 0 put it back (a storage failure): the pool claims it again
            events.publish(.status(jobId: job.id, status: .queued))
            return
        }
        switch ending {
        case .cancelled:
            runner.finish(job, .cancelled, code: nil, message: nil)
        case .shutdown:
            do {
                try jobs.requeueJob(id: job.id)
                events.publish(.status(jobId: job.id, status: .queued))
            } catch {
                runner.finish(job, .failed, code: "internal_error", message: String(describing: error))
            }
        case .stalled:
            runner.retryOrFail(job, code: "distributed_stalled",
                               message: "no epoch from the MPI processes in \(Int(configuration.stallTimeout)) s; they were stopped", logger: logger)
        case .exited:
            let tail = Self.lastLines(of: logFile, count: 6)
            runner.retryOrFail(job, code: "distributed_process_failed",
                               message: "an MPI process ended the job (mpirun \(status))\(tail.isEmpty ? "" : ": \(tail)")", logger: logger)
        }
    }

    private enum Ending { case exited, cancelled, shutdown, stalled }

    /// The end of mpirun's output, for the job's error message.
    static func lastLines(of file: URL, count: Int) -> String {
        guard let data = try? Data(contentsOf: file), let text = String(data: data.suffix(4096), encoding: .utf8) else { return "" }
        return text.split(separator: "\n").filter { !$0.allSatisfy { $0 == "-" || $0 == " " } }.suffix(count).joined(separator: " | ")
    }
}

/// A child process in a process group of its own (posix_spawn with POSIX_SPAWN_SETPGROUP), output to a file.
final class ProcessGroup: @unchecked Sendable {
    let pid: pid_t
    private var status: Int32?

    private init(pid: pid_t) { self.pid = pid }

    struct SpawnError: Error, CustomStringConvertible {
        let code: Int32
        var description: String { String(cString: strerror(code)) }
    }

    static func spawn(_ arguments: [String], environment extra: [String: String] = [:], output path: String) throws -> ProcessGroup {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var environment = ProcessInfo.processInfo.environment
        // mpirun refuses root without these (containers run as root).
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment.merge(extra) { _, new in new }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(code: result) }
        return ProcessGroup(pid: pid)
    }

    /// The exit status once the process ended, nil while it runs.
    func poll() -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == pid { status = raw; return raw }
        if result < 0 { status = -1; return -1 }
        return nil
    }

    /// Waits for the end; describes it as "exit status N" or "killed by signal N".
    @discardableResult
    func wait() -> String {
        while poll() == nil { usleep(20_000) }
        let raw = status ?? -1
        if raw < 0 { return "status unknown" }
        let signal = raw & 0x7f
        return signal == 0 ? "exit status \((raw >> 8) & 0xff)" : "killed by signal \(signal)"
    }

    /// SIGTERM to the group (mpirun passes it on to its ranks), SIGKILL to the group after `grace` seconds.
    func terminate(grace: Double) {
        kill(-pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while poll() == nil, Date() < deadline { usleep(50_000) }
        // Whatever is left of the group (ranks mpirun could not reach) goes too.
        kill(-pid, SIGKILL)
    }
}

extension MetricsRow {
    /// The row as the trainer reported it (an event for subscribers of a job trained in other processes).
    var epochMetrics: EpochMetrics {
        let recall = valClassRecall.flatMap { try? JSONValue.parse(Data($0.utf8)) }
        var metrics = EpochMetrics(epoch: epoch, trainLoss: trainLoss, trainAccuracy: trainAccuracy, validationLoss: valLoss,
                                   validationAccuracy: valAccuracy, learningRate: lr, gradientNorm: gradNorm, penalty: penalty,
                                   sparsity: sparsity, seconds: seconds, samplesPerSecond: samplesPerSecond)
        if case .array(let items)? = recall { metrics.validationClassRecall = items.map(\.number) }
        metrics.validationMacroF1 = valMacroF1
        return metrics
    }
}
