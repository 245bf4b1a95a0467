import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Server
import ServiceLifecycle
import Training
import Workers

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server: HTTP API, status page and the worker pool.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(name: .customLong("data-dir"), help: "Data folder: descent.sqlite, datasets/, models/.") var dataDirectory = "./data"
    @Option(help: "The job store: a SQLite file (default: <data-dir>/descent.sqlite), or postgres://user@host:port/db for a fleet of servers sharing one queue (their --data-dir must then be one shared folder).")
    var database: String?
    @Option(name: .customLong("node-id"), help: "A fleet's name for this server, owner of the leases of the jobs it runs (default: hostname:port).")
    var nodeId: String?
    @Option(name: .customLong("lease-seconds"), help: "A fleet: how long a claimed job stays this server's without a heartbeat; then another server requeues it.")
    var leaseSeconds: Double = 30
    @Option(help: "Jobs trained at once (0: a server that answers the API and trains nothing, e.g. a fleet's front node).") var workers = 1
    @Option(name: .customLong("blas-threads"), help: "OpenBLAS threads (default: cores / workers).") var blasThreads: Int?
    @Option(name: .customLong("blas-core"), help: BLASCore.help) var blasCore = BLASCore.inherit
    @Option(name: .customLong("max-upload-bytes"), help: "Largest dataset upload.") var maxUploadBytes = 512 * 1024 * 1024
    @Option(name: .customLong("shutdown-timeout"), help: "Seconds a graceful shutdown (SIGTERM) may wait for requests in progress, uploads included, before they are cancelled.")
    var shutdownTimeout = 30
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more wait until one closes (default: half the open-file limit, at most 4096).")
    var maxConnections: Int?
    @Option(name: .customLong("max-features"), help: "Most features (values) one sample of an uploaded dataset may have.")
    var maxFeatures = 1_000_000
    @Option(name: .customLong("upload-timeout"), help: "Seconds a dataset upload may take to arrive whole (408 after).") var uploadTimeout = 900
    @Option(help: "Bearer tokens on /v1 routes: on or off (default: on, unless --host is a loopback address).") var auth: String?
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve HTTPS only (with --tls-key).") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.") var tlsKey: String?
    @Option(name: .customLong("allowed-host"), help: "With auth off: a host name requests may name in their Host header besides loopback names and --host (repeatable); others get 403, so a DNS name rebound to this machine reaches nothing.")
    var allowedHosts: [String] = []
    @Option(name: .customLong("max-queued-per-tenant"), help: "Queued and running jobs a tenant may have at once (a study's jobs count).")
    var maxQueuedPerTenant = 100
    @Option(name: .customLong("max-datasets-per-tenant"), help: "Datasets a tenant may keep.") var maxDatasetsPerTenant = 100
    @Option(name: .customLong("max-dataset-bytes-per-tenant"), help: "Stored bytes of a tenant's datasets.")
    var maxDatasetBytesPerTenant = 4 * 1024 * 1024 * 1024
    @Option(name: .customLong("max-epoch-samples"), help: "A job's epochs × training rows.") var maxEpochSamples = 1_000_000_000
    @Option(name: .customLong("max-model-parameters"), help: "Trainable parameters of a job's model.") var maxModelParameters = 50_000_000
    @Option(name: .customLong("max-spec-bytes"), help: "Largest JSON body of POST /v1/jobs, /v1/jobs/validate and /v1/studies.")
    var maxSpecBytes = 1024 * 1024
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may send nothing (before or during a request) before it is closed.")
    var idleTimeout = 60
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "The mpirun that starts distributed.processes jobs (Open MPI).") var mpirun = "mpirun"
    @Option(name: .customLong("mpi-stall-timeout"), help: "Seconds an MPI job may go without finishing an epoch before its processes are stopped and the job retried.")
    var mpiStallTimeout = 600
    @Option(help: "Where jobs train: process (each in a descent worker process of its own, so a crash or a memory blow-up is that job's failure) or thread (in the server's process).")
    var isolation: JobIsolation = .process
    @Option(name: .customLong("job-memory-limit"), help: "The address space (bytes) one job's worker process may take (default: half of this machine's memory); 0 for no limit.")
    var jobMemoryLimit: Int?
    @Option(name: .customLong("mpi-hosts"), help: "The hosts jobs may place MPI ranks on, comma-separated host:slots (mpirun reaches them over ssh as this server); default: this machine only.")
    var mpiHosts: String?
    @Option(name: .customLong("max-mpi-processes"), help: "MPI ranks one job may ask for.") var maxMPIProcesses = 16
    @Option(name: .customLong("max-mpi-processes-per-tenant"), help: "MPI ranks a tenant's queued and running jobs may ask for together.")
    var maxMPIProcessesPerTenant = 32
    @Flag(name: .customLong("webhook-allow-private"), help: "Let webhooks go to loopback, private and link-local addresses (a tenant could then reach this server's own network).")
    var webhookAllowPrivate = false
    @Option(name: .customLong("job-stall-timeout"), help: "Seconds a job's worker process may go without finishing an epoch before it is stopped and the attempt failed.")
    var jobStallTimeout = 600

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard (0...64).contains(workers) else { throw ValidationError("--workers must be between 0 and 64") }
        if let blasThreads, !(1...256).contains(blasThreads) { throw ValidationError("--blas-threads must be between 1 and 256") }
        guard maxUploadBytes > 0 else { throw ValidationError("--max-upload-bytes must be positive") }
        // A worker reserves a few hundred MiB of address space (runtime, threads, OpenBLAS) before training anything.
        if let jobMemoryLimit, jobMemoryLimit != 0, jobMemoryLimit < 1 << 30 {
            throw ValidationError("--job-memory-limit must be 0 (no limit) or at least 1 GiB (\(1 << 30) bytes), got \(jobMemoryLimit)")
        }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be positive, got \(maxConnections)") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if let auth, auth != "on", auth != "off" { throw ValidationError("--auth must be on or off, got \(auth)") }
        for (flag, value) in [("--max-queued-per-tenant", maxQueuedPerTenant), ("--max-datasets-per-tenant", maxDatasetsPerTenant),
                              ("--max-dataset-bytes-per-tenant", maxDatasetBytesPerTenant), ("--max-epoch-samples", maxEpochSamples),
                              ("--max-model-parameters", maxModelParameters), ("--max-spec-bytes", maxSpecBytes),
                              ("--idle-timeout", idleTimeout), ("--mpi-stall-timeout", mpiStallTimeout),
                              ("--job-stall-timeout", jobStallTimeout), ("--max-features", maxFeatures), ("--shutdown-timeout", shutdownTimeout), ("--upload-timeout", uploadTimeout), ("--max-mpi-processes", maxMPIProcesses), ("--max-mpi-processes-per-tenant", maxMPIProcessesPerTenant)] where value < 1 {
            throw ValidationError("\(flag) must be positive, got \(value)")
        }
        guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1, got \(leaseSeconds)") }
        if let nodeId, nodeId.isEmpty { throw ValidationError("--node-id must not be empty") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
    }

    func run() async throws {
        blasCore.apply()
        // Datasets, models and the database are the tenants' data: files owner-only (0600), folders 0700.
        umask(0o077)
        var configuration = ServerConfiguration(dataDirectory: URL(fileURLWithPath: dataDirectory, isDirectory: true))
        configuration.host = host
        configuration.port = port
        configuration.databasePath = database
        configuration.nodeId = nodeId
        configuration.leaseSeconds = leaseSeconds
        configuration.workerCount = max(1, workers)
        configuration.runsWorkers = workers > 0
        configuration.blasThreads = blasThreads
        configuration.maxUploadBytes = maxUploadBytes
        configuration.maxFeatures = maxFeatures
        let openFiles = ServerConfiguration.raiseOpenFileLimit()
        configuration.maxConnections = maxConnections ?? ServerConfiguration.defaultMaxConnections(openFileLimit: openFiles)
        configuration.uploadTimeout = .seconds(uploadTimeout)
        configuration.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        configuration.requiresAuthentication = auth.map { $0 == "on" } ?? !ServerConfiguration.isLoopback(host: host)
        configuration.allowedHosts = allowedHosts
        if let tlsCert, let tlsKey { configuration.tls = (tlsCert, tlsKey) }
        configuration.maxQueuedPerTenant = maxQueuedPerTenant
        configuration.maxDatasetsPerTenant = maxDatasetsPerTenant
        configuration.maxDatasetBytesPerTenant = maxDatasetBytesPerTenant
        configuration.maxEpochSamples = maxEpochSamples
        configuration.maxModelParameters = maxModelParameters
        configuration.maxSpecBytes = maxSpecBytes
        configuration.idleTimeout = .seconds(idleTimeout)
        configuration.mpirun = mpirun
        configuration.mpiStallTimeout = Double(mpiStallTimeout)
        configuration.isolation = isolation
        configuration.webhookAllowsPrivateTargets = webhookAllowPrivate
        configuration.maxMPIProcesses = maxMPIProcesses
        configuration.maxMPIProcessesPerTenant = maxMPIProcessesPerTenant
        configuration.mpiHosts = try Self.hosts(mpiHosts)
        let memory = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        configuration.jobMemoryLimit = jobMemoryLimit.map { $0 == 0 ? nil : $0 } ?? memory / 2
        configuration.jobStallTimeout = Double(jobStallTimeout)
        var logger = Logger(label: "descent")
        logger.logLevel = configuration.logLevel
        logger.info("OpenBLAS kernels: \(BLASCore.description)")
        logger.info("open-file limit \(openFiles); serving at most \(configuration.maxConnections ?? 0) connections at once")
        do {
            // SIGTERM and SIGINT shut down gracefully (jobs handed back, requests finished), but a slow upload
            // or a stalled client may not hold a rolling deploy: past --shutdown-timeout what is left is cancelled.
            var group = ServiceGroupConfiguration(services: [try await buildApplication(configuration)],
                                                  gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            group.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
            group.maximumCancellationDuration = .seconds(10)
            try await ServiceGroup(configuration: group).run()
        } catch let error as ServerStartError {
            logger.critical("\(error.description)")
            throw ExitCode.failure
        }
    }
}

extension JobIsolation: ExpressibleByArgument {}

extension Serve {
    /// `--mpi-hosts h1:2,h2:4`, each entry read as a spec's `distributed.hosts` entry is.
    static func hosts(_ list: String?) throws -> [DistributedSpec.Host] {
        guard let list else { return [] }
        return try list.split(separator: ",").map { entry in
            switch DistributedSpec.Host.parse(String(entry).trimmingCharacters(in: .whitespaces)) {
            case .success(let host): return host
            case .failure(let error): throw ValidationError("--mpi-hosts: \(error.message)")
            }
        }
    }
}
