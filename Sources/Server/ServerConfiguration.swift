import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Training
import Workers

/// Everything `descent serve` can be told; tests build one with an in-memory database and a
/// temporary data folder.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Holds `descent.sqlite`, `datasets/` and `models/`.
    public var dataDirectory: URL
    /// Nil: `<dataDirectory>/descent.sqlite`. `":memory:"`: an in-memory database (tests). A
    /// `postgres://user@host:port/db` URL: the PostgreSQL queue a fleet of servers shares (their
    /// data folders must then be one shared folder).
    public var databasePath: String?
    /// A fleet's name for this server, the owner of the leases of the jobs it runs. Nil: `host:port`
    /// with this machine's host name, the same again after a restart (which then requeues at once the
    /// jobs this server left running).
    public var nodeId: String?
    /// A fleet: how long a job a server claimed stays its without a heartbeat (renewed three times
    /// per lease); after that another server requeues it.
    public var leaseSeconds: Double = 30
    public var workerCount = 1
    /// Waits before each retry of a failed webhook delivery (their count is the number of retries).
    public var webhookRetryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30), .seconds(120)]
    /// Whether webhooks may go to loopback, private and link-local addresses (`--webhook-allow-private`).
    public var webhookAllowsPrivateTargets = false
    /// How long one webhook delivery may take before it counts as failed.
    public var webhookTimeout: TimeInterval = 10
    public var blasThreads: Int?
    public var maxUploadBytes = 512 * 1024 * 1024
    /// Most features (values) one sample of an uploaded dataset may have.
    public var maxFeatures = 1_000_000
    /// A dataset upload must arrive whole within this time (408 otherwise): 512 MiB at 0.6 MB/s.
    public var uploadTimeout: Duration = .seconds(900)
    /// Largest JSON body (predictions; job specs and studies have `maxSpecBytes` too).
    public var maxJSONBytes = 16 * 1024 * 1024
    /// Largest body of `POST /v1/jobs`, `/v1/jobs/validate` and `/v1/studies`.
    public var maxSpecBytes = 1024 * 1024
    /// Deepest nesting of arrays and objects in a JSON body.
    public var maxJSONDepth = 64
    /// A JSON body must arrive whole within this time (408 otherwise).
    public var bodyTimeout: Duration = .seconds(60)
    /// A connection that sends nothing for this long while the server waits for a request (or for
    /// the rest of one) is closed, so a stalled client cannot hold it forever.
    public var idleTimeout: Duration = .seconds(60)

    /// `--tls-cert`, `--tls-key`: PEM files of the certificate chain and its private key; the server
    /// then speaks HTTPS only. Both or neither.
    public var tls: (certificateChain: String, privateKey: String)?

    /// Connections served at once (`--max-connections`); more wait in the listen backlog until one
    /// closes. Nil: no cap (tests). `descent serve` sizes it under the open-file limit
    /// (`defaultMaxConnections`), so sockets can never take the descriptors its files need.
    public var maxConnections: Int?

    /// `--auth on`: every `/v1` request needs `Authorization: Bearer <token>` and acts for the
    /// token's tenant. Off: every request acts for the default tenant.
    public var requiresAuthentication = false
    /// Auth off: the host names (besides loopback ones and `host`) that requests may name in `Host`
    /// (`--allowed-host`); any other is refused, so a DNS name rebound to this machine reaches nothing.
    public var allowedHosts: [String] = []
    /// Queued and running jobs a tenant may have at once (a study's jobs count).
    public var maxQueuedPerTenant = 100
    /// Datasets a tenant may keep.
    public var maxDatasetsPerTenant = 100
    /// Stored bytes of a tenant's datasets (data and labels files).
    public var maxDatasetBytesPerTenant = 4 * 1024 * 1024 * 1024
    /// A job's `epochs × training rows` (samples it trains on, fine-tuning epochs included).
    public var maxEpochSamples = 1_000_000_000
    /// Trainable parameters of a job's model (both networks of a GAN).
    public var maxModelParameters = 50_000_000
    /// Tests of the HTTP layer alone can leave the workers off so jobs stay queued.
    public var runsWorkers = true
    /// `distributed.processes` jobs: the mpirun to run, and seconds without an epoch before their ranks are presumed hung.
    public var mpirun = "mpirun"
    public var mpiStallTimeout: Double = 600
    /// MPI ranks one job may ask for (`--max-mpi-processes`).
    public var maxMPIProcesses = 16
    /// MPI ranks a tenant's queued and running jobs may ask for together.
    public var maxMPIProcessesPerTenant = 32
    /// The hosts (and their most slots) jobs may place MPI ranks on (`--mpi-hosts`); empty: this machine only.
    public var mpiHosts: [DistributedSpec.Host] = []
    /// Where jobs train: `.process` (`descent serve`'s default) gives each its own `descent worker`, so a
    /// crash is that job's failure; `.thread` (in-memory tests) trains in the server's process.
    public var isolation: JobIsolation = .thread
    /// The address space one job's worker process may take (bytes); nil: unlimited. Process isolation only.
    public var jobMemoryLimit: Int?
    /// Seconds a job's worker may go without finishing an epoch before it is stopped. Process isolation only.
    public var jobStallTimeout: Double = 600
    public var logLevel: Logger.Level = .info

    /// `nodeId`, or this machine's host name and the port.
    public var resolvedNodeId: String {
        nodeId ?? "\(ProcessInfo.processInfo.hostName):\(port)"
    }

    public init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
    }

    /// Whether `host` reaches only this machine (`localhost`, `127.0.0.0/8`, `::1`): where
    /// `descent serve` leaves auth off unless told otherwise.
    public static func isLoopback(host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// A loopback port the kernel considers free right now (bound to port 0, then released), for a
    /// `descent serve` started by the benchmark or the tests.
    public static func freeLoopbackPort() -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : Int.random(in: 20_000...30_000)
    }
}

extension ServerConfiguration {
    /// Raises this process's soft open-file limit to its hard limit (allowed without privileges) and
    /// returns the limit in force.
    public static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }

    /// Half the open-file limit, at most 4096: the other half stays for datasets, models, the database
    /// and the workers' pipes.
    public static func defaultMaxConnections(openFileLimit: Int) -> Int {
        max(16, min(4096, openFileLimit / 2))
    }
}
