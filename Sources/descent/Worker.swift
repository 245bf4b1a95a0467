import ArgumentParser
import Foundation
import Logging
import MPICollective
import Workers

/// `descent worker`: one MPI rank of a `distributed.processes` job. The server starts it through
/// mpirun; it is not meant to be typed, so it stays out of the help.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one rank of a distributed.processes job (started by the server through mpirun).",
        shouldDisplay: false)

    @Option(help: "The job to train (it must be running: the server claimed it).") var job: String
    @Option(name: .customLong("data-dir"), help: "The server's data folder (shared storage when hosts differ).") var dataDirectory = "./data"
    @Option(help: "The server's database file (default: \(DistributedWorker.databaseVariable) when set, a fleet's postgres:// URL, else descent.sqlite in the data folder).")
    var database: String?
    @Option(name: .customLong("node-id"), help: "A fleet node's id: the node that holds the job's lease.") var nodeId: String?
    @Option(name: .customLong("blas-threads"), help: "OpenBLAS threads of this rank.") var blasThreads = 1

    func run() throws {
        var logger = Logger(label: "descent.worker")
        logger.logLevel = .info
        guard let collective = MPICollective() else {
            logger.error("MPI_Init failed: descent worker runs under mpirun")
            throw ExitCode(69)
        }
        let folder = URL(fileURLWithPath: dataDirectory, isDirectory: true)
        let ending = DistributedWorker.run(jobId: job, dataDirectory: folder,
                                           databasePath: database ?? ProcessInfo.processInfo.environment[DistributedWorker.databaseVariable]
                                               ?? folder.appendingPathComponent("descent.sqlite").path,
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
