import Foundation
#if canImport(Glibc)
import Glibc
#endif
import JobStore
import Logging
import Tensors
import NeuralNetwork
import Training

/// Where a job trains: in a thread of the server, or in a `descent worker` child process of its own.
public enum JobIsolation: String, Sendable, CaseIterable {
    /// A thread of the server's process (tests with an in-memory database; a crash takes the server down).
    case thread
    /// A child process per job (`descent serve`'s default): a crash, a memory blow-up or a hang is that job's failure.
    case process
}

/// How the server starts the processes that train jobs: one `descent worker` per job (`JobIsolation.process`),
/// and the ranks of `distributed.processes` jobs under mpirun.
public struct WorkerProcessConfiguration: Sendable {
    public var isolation: JobIsolation = .thread
    /// The most memory (address space, bytes) one job's worker process may take (`--job-memory-limit`); nil: no limit.
    public var memoryLimit: Int?
    /// Seconds a job's worker process may go without finishing an epoch (or, before the first, since it
    /// started) before it is presumed hung, killed and the attempt failed (`--job-stall-timeout`).
    public var jobStallTimeout: Double = 600
    /// The mpirun to run (looked up on PATH): Debian's openmpi-bin.
    public var mpirun = "mpirun"
    /// The `descent` executable the workers and ranks run (`descent worker`); nil: this process's own executable.
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

    public init(isolation: JobIsolation = .thread, memoryLimit: Int? = nil, jobStallTimeout: Double = 600,
                mpirun: String = "mpirun", workerExecutable: String? = nil, databasePath: String? = nil, nodeId: String? = nil,
                stallTimeout: Double = 600) {
        self.isolation = isolation
        self.memoryLimit = memoryLimit
        self.jobStallTimeout = jobStallTimeout
        self.mpirun = mpirun
        self.workerExecutable = workerExecutable
        self.databasePath = databasePath
        self.nodeId = nodeId
        self.stallTimeout = stallTimeout
    }
}

/// Trains a job in other processes, from the worker thread that claimed it: a `distributed.processes`
/// job as `mpirun -n N … descent worker --job ID`, any other (with `JobIsolation.process`) as one
/// `descent worker --job ID --single`. The worker (rank 0) records epochs, checkpoints and the outcome in
/// the same database, and this thread watches: it relays the epochs to the event hub, kills the process
/// group on cancellation, shutdown or a stall, and maps how the process ended to the job's state. A
/// worker that dies (a signal, its memory limit) fails that attempt, retried from the checkpoint while
/// attempts remain, and a job whose worker dies the same way twice in a row is failed as `crashed`:
/// a poison job must not loop. The group is its own, so killing it kills the ranks too.
struct WorkerProcessLauncher: Sendable {
    /// The environment variable that carries a PostgreSQL URL to `descent worker`.
    static let databaseVariable = DistributedWorker.databaseVariable

    let configuration: WorkerProcessConfiguration
    let dataDirectory: URL
    let jobs: any JobRepository
    let events: JobEventHub
    let logger: Logger

    /// How each job's last crashed attempt died ("signal 11"), to fail the next identical one as a poison job.
    /// In memory: after a server restart a job gets its crash-retry again, within `max_attempts`.
    let crashes = CrashLedger()

    func isDistributed(_ job: JobRecord) -> Bool {
        (try? JobSpec.parse(Data(job.spec.utf8)))?.distributed?.processes != nil
    }

    /// Whether this launcher trains `job`: MPI jobs always, every job with process isolation.
    func launches(_ job: JobRecord) -> Bool { configuration.isolation == .process || isDistributed(job) }

    /// `descent worker --single` for a job trained by one process.
    func singleWorkerArguments(for job: JobRecord, databasePath: String, executable: String) -> [String] {
        var arguments = [executable, "worker", "--single", "--job", job.id, "--data-dir", dataDirectory.path]
        if !PostgresStore.isPostgresURL(databasePath) { arguments += ["--database", databasePath] }
        if let nodeId = configuration.nodeId { arguments += ["--node-id", nodeId] }
        if let limit = configuration.memoryLimit { arguments += ["--memory-limit", "\(limit)"] }
        arguments += ["--blas-threads", "\(BLAS.threadCount)", "--log-level", "\(logger.logLevel)"]
        return arguments
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
        if job.countedAttempts > job.maxAttempts {
            runner.finish(job, .failed, code: "too_many_attempts",
                          message: "the job was interrupted \(job.countedAttempts - 1) times (max_attempts \(job.maxAttempts))")
            return
        }
        let spec = try? JobSpec.parse(Data(job.spec.utf8))
        let distributed = spec?.distributed.flatMap { $0.processes == nil ? nil : $0 }
        guard let databasePath = configuration.databasePath else {
            runner.finish(job, .failed, code: "invalid_spec",
                          message: distributed != nil ? "distributed.processes: this server keeps its database in memory, which MPI ranks cannot open"
                              : "this server keeps its database in memory, which a job's worker process cannot open; use --isolation thread")
            return
        }
        let executable = configuration.workerExecutable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let logs = dataDirectory.appendingPathComponent("logs", isDirectory: true)
        try? FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let logFile = logs.appendingPathComponent("\(job.id).attempt\(job.attempt).\(distributed == nil ? "worker" : "mpirun").log")
        let arguments: [String]
        if let distributed {
            arguments = self.arguments(for: job, distributed: distributed, databasePath: databasePath, executable: executable)
            logger.info("training job on \(distributed.processes ?? 1) MPI processes (attempt \(job.attempt)): \(arguments.joined(separator: " "))")
            events.publish(.log(jobId: job.id, message: "starting \(distributed.processes ?? 1) MPI processes (attempt \(job.attempt))"))
        } else {
            arguments = singleWorkerArguments(for: job, databasePath: databasePath, executable: executable)
            logger.info("training job in a worker process (attempt \(job.attempt)): \(arguments.joined(separator: " "))")
        }
        let stallTimeout = distributed == nil ? configuration.jobStallTimeout : configuration.stallTimeout

        let process: ProcessGroup
        var environment = PostgresStore.isPostgresURL(databasePath) ? [Self.databaseVariable: databasePath] : [:]
        // Swift's backtracer would keep a crashed worker alive (its other threads training on) while it
        // symbolicates: a crash must end the process at once, its last log lines say where it was.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        do { process = try ProcessGroup.spawn(arguments, environment: environment, output: logFile.path) } catch {
            // Not transient: a retry would meet the same missing program.
            if distributed != nil {
                runner.finish(job, .failed, code: "mpi_unavailable",
                              message: "could not start \(configuration.mpirun) (Open MPI's openmpi-bin: make serve installs it): \(error)")
            } else {
                runner.finish(job, .failed, code: "worker_unavailable", message: "could not start the worker process \(executable): \(error)")
            }
            return
        }
        let epochs = spec?.plannedEpochs ?? 1
        var lastProgress = Date()
        // The attempt starts from its checkpoint (rows after it are dropped and trained again).
        var relayedEpoch = job.checkpointEpoch ?? 0
        func relayEpochs() {
            guard let rows = try? jobs.metrics(jobId: job.id, afterEpoch: relayedEpoch), let last = rows.last else { return }
            for row in rows { events.publish(.epoch(jobId: job.id, metrics: row.epochMetrics, epochs: epochs)) }
            relayedEpoch = last.epoch
            lastProgress = Date()
        }
        // The workers' log lines join the server's own (standard error) as they are written.
        let workerLog = FileHandle(forReadingAtPath: logFile.path)
        try? workerLog?.seekToEnd()
        func relayLog() {
            if let data = try? workerLog?.readToEnd(), !data.isEmpty { FileHandle.standardError.write(data) }
        }
        defer {
            relayLog()
            try? workerLog?.close()
        }
        var lastPoll = Date.distantPast
        var ending: Ending = .exited
        while process.poll() == nil {
            if let reason = stopCheck() {
                ending = reason == .cancelled ? .cancelled : .shutdown
            } else if Date().timeIntervalSince(lastPoll) >= 0.1 {
                lastPoll = Date()
                // One row read a tenth of a second; the new metrics rows only when the epoch moved.
                let current = try? jobs.job(id: job.id)
                if current?.cancelRequested == true { ending = .cancelled }
                // The worker writes the epochs to the store; this process's subscribers hear of them here.
                if let current, current.epoch != relayedEpoch { relayEpochs() }
                if Date().timeIntervalSince(lastProgress) > stallTimeout { ending = .stalled }
            }
            if ending != .exited {
                process.terminate(grace: configuration.killGrace)
                break
            }
            relayLog()
            Thread.sleep(forTimeInterval: 0.05)
        }
        let status = process.wait()
        // Through a database restart too: a job that cannot be read now must not count as a crash.
        var record: JobRecord?
        guard runner.persist("the state of job \(job.id) after its worker", { record = try jobs.job(id: job.id) }) else { return }
        if let record, [.succeeded, .failed, .cancelled].contains(record.status) {
            crashes.forget(job.id)
            // Rank 0 finished the job.
            relayEpochs()
            events.publish(.done(jobId: job.id, status: record.status))
            logger.info("job ended \(record.status) (\(distributed == nil ? "worker" : "mpirun"): \(status))")
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
                try jobs.requeueJob(id: job.id, countingAttempt: false)
                events.publish(.status(jobId: job.id, status: .queued))
            } catch {
                runner.finish(job, .failed, code: "internal_error", message: String(describing: error))
            }
        case .stalled where distributed != nil:
            runner.retryOrFail(job, code: "distributed_stalled",
                               message: "no epoch from the MPI processes in \(Int(stallTimeout)) s; they were stopped", logger: logger)
        case .stalled:
            runner.retryOrFail(job, code: "stalled",
                               message: "the job's worker finished no epoch in \(Int(stallTimeout)) s (--job-stall-timeout); it was stopped", logger: logger)
        case .exited where distributed != nil:
            let tail = Self.lastLines(of: logFile, count: 6)
            runner.retryOrFail(job, code: "distributed_process_failed",
                               message: "an MPI process ended the job (mpirun \(status))\(tail.isEmpty ? "" : ": \(tail)")", logger: logger)
        case .exited:
            workerDied(job, status: status, logFile: logFile, runner: runner, logger: logger)
        }
    }

    /// A single worker that ended without recording an outcome: killed by a signal (a crash, the kernel's
    /// OOM killer, an operator) or out of its memory limit. Retried while attempts remain, unless its
    /// previous attempt died the same way: then the job is failed as `crashed` at once.
    private func workerDied(_ job: JobRecord, status: ProcessGroup.Termination, logFile: URL, runner: JobRunner, logger: Logger) {
        let tail = Self.lastLines(of: logFile, count: 6, skippingStackFrames: true)
        let memory = configuration.memoryLimit.map { " (memory limit \($0 / (1 << 20)) MiB, --job-memory-limit)" } ?? ""
        let outOfMemory = Self.ranOutOfMemory(tail)
        let how = outOfMemory ? "ran out of its memory limit\(memory), \(status)" : "died, \(status)\(memory)"
        let message = "the job's worker process \(how)\(tail.isEmpty ? "" : "; its last lines: \(tail)")"
        let signature = outOfMemory ? "memory" : "\(status)"
        if crashes.record(job.id, signature) {
            crashes.forget(job.id)
            runner.finish(job, .failed, code: "crashed",
                          message: "\(message). The previous attempt died the same way, so the job is not retried: it would only crash again")
            return
        }
        runner.retryOrFail(job, code: outOfMemory ? "out_of_memory" : "worker_crashed", message: message, logger: logger)
    }

    /// Whether a worker's last lines say an allocation failed (Swift's runtime, glibc, OpenBLAS).
    static func ranOutOfMemory(_ text: String) -> Bool {
        let lowered = text.lowercased()
        return ["failed to allocate", "could not allocate", "cannot allocate", "out of memory", "memory allocation failed", "std::bad_alloc"]
            .contains { lowered.contains($0) }
    }

    private enum Ending { case exited, cancelled, shutdown, stalled }

    /// The end of mpirun's output, for the job's error message.
    /// With `skippingStackFrames`, the numbered frames of a crash's stack trace are left out: the lines
    /// before them ("Fatal error: …") say what happened.
    static func lastLines(of file: URL, count: Int, skippingStackFrames: Bool = false) -> String {
        guard let data = try? Data(contentsOf: file), let text = String(data: data.suffix(16384), encoding: .utf8) else { return "" }
        return text.split(separator: "\n").filter { line in
            if line.allSatisfy({ $0 == "-" || $0 == " " }) { return false }
            guard skippingStackFrames else { return true }
            return !(line.first?.isNumber == true && line.contains(" 0x")) && line != "Current stack trace:"
        }.suffix(count).joined(separator: " | ")
    }
}

/// Each job's last crash signature, in memory: two identical ones in a row make a poison job.
final class CrashLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var last: [String: String] = [:]

    /// Records how `jobId`'s attempt died; true if the previous attempt died the same way.
    func record(_ jobId: String, _ signature: String) -> Bool {
        lock.withLock {
            defer { last[jobId] = signature }
            return last[jobId] == signature
        }
    }

    func forget(_ jobId: String) { _ = lock.withLock { last.removeValue(forKey: jobId) } }
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
        // Nothing else of the server's: not its listening socket (a worker outliving a killed server would
        // keep the port), not its database handles, not the pipes its own parent watches it by.
        // (glibc's addclosefrom_np is not visible to Swift; a close of an fd closed meanwhile is ignored.)
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
        for descriptor in open where descriptor > 2 { posix_spawn_file_actions_addclose(&actions, descriptor) }
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

    /// How a process ended.
    enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        case unknown

        var description: String {
            switch self {
            case .exited(let code): "exit status \(code)"
            case .signaled(let signal): "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            case .unknown: "status unknown"
            }
        }
    }

    /// Waits for the end.
    @discardableResult
    func wait() -> Termination {
        while poll() == nil { usleep(20_000) }
        let raw = status ?? -1
        if raw < 0 { return .unknown }
        let signal = raw & 0x7f
        return signal == 0 ? .exited((raw >> 8) & 0xff) : .signaled(signal)
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
