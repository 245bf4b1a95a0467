import ArgumentParser
import Foundation
import Glibc
import Logging
import MPICollective
import Workers

/// `descent worker`: a job's own process (`--single`, the server's process isolation) or one MPI rank of a
/// `distributed.processes` job (started through mpirun). The server starts it; it is not meant to be
/// typed, so it stays out of the help.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a job in a process of its own, or one rank of a distributed.processes job (started by the server).",
        shouldDisplay: false)

    @Option(help: "The job to train (it must be running: the server claimed it).") var job: String
    @Option(name: .customLong("data-dir"), help: "The server's data folder (shared storage when hosts differ).") var dataDirectory = "./data"
    @Option(help: "The server's database file (default: \(DistributedWorker.databaseVariable) when set, a fleet's postgres:// URL, else descent.sqlite in the data folder).")
    var database: String?
    @Option(name: .customLong("node-id"), help: "A fleet node's id: the node that holds the job's lease.") var nodeId: String?
    @Option(name: .customLong("blas-threads"), help: "OpenBLAS threads of this rank.") var blasThreads = 1
    @Flag(help: "Train the job as its only process, without MPI (the server's process isolation).") var single = false
    @Option(name: .customLong("log-level"), help: "The server's log level, which its worker follows.") var logLevel = "info"
    @Option(name: .customLong("memory-limit"), help: "The most address space (bytes) this process may take (setrlimit RLIMIT_AS).")
    var memoryLimit: Int?

    func run() throws {
        var logger = Logger(label: "descent.worker")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        if let memoryLimit {
            // Address space, not resident memory: the runtime, Dispatch and OpenBLAS reserve a few hundred MiB
            // before the job allocates anything, which is why the server asks for at least 1 GiB.
            // A job that asks for more fails its own allocation instead of the machine's other work.
            var limit = rlimit(rlim_cur: rlim_t(memoryLimit), rlim_max: rlim_t(memoryLimit))
            if setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) != 0 { logger.warning("could not set the memory limit: \(String(cString: strerror(errno)))") }
        }
        let folder = URL(fileURLWithPath: dataDirectory, isDirectory: true)
        let databasePath = database ?? ProcessInfo.processInfo.environment[DistributedWorker.databaseVariable]
            ?? folder.appendingPathComponent("descent.sqlite").path
        if single {
            let ending = DistributedWorker.run(jobId: job, dataDirectory: folder, databasePath: databasePath, nodeId: nodeId,
                                               collective: nil, blasThreads: max(1, blasThreads), logger: logger)
            // The server reads the outcome from the store; a worker that could not record one says why here.
            if case .abort(let code, let reason) = ending {
                logger.error("\(reason)")
                Glibc.exit(code)
            }
            Glibc.exit(0)
        }
        guard let collective = MPICollective() else {
            logger.error("MPI_Init failed: descent worker runs under mpirun")
            throw ExitCode(69)
        }
        let ending = DistributedWorker.run(jobId: job, dataDirectory: folder, databasePath: databasePath,
                                           nodeId: nodeId, collective: collective, blasThreads: max(1, blasThreads), logger: logger)
        switch ending {
        case .finished:
            collective.finalize()
        case .abort(let code, let reason):
            logger.error("rank \(collective.rank): \(reason)")
            collective.abort(code: code)
        }
    }
}
