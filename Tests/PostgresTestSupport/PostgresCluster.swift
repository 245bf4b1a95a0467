import Foundation
import Server
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster for the tests: `initdb` in a temporary folder, `postgres` on a free
/// loopback port with trust authentication, started once per test process (`shared`) and stopped
/// (`pg_ctl stop -m immediate`, folder removed) when the process exits. Each test takes a database
/// of its own (`makeDatabase()`), so tests running in parallel never see each other's rows.
///
/// initdb refuses to run as root: as root (CI), the cluster runs as the unprivileged `nobody` (uid 65534), and
/// its folder belongs to that user. The binaries are PostgreSQL's own (`/usr/lib/postgresql/<n>/bin`,
/// the Debian package `postgresql-15`, which `make test` installs).
public final class PostgresCluster: @unchecked Sendable {
    public let port: Int
    public let folder: URL
    let binaries: URL
    let user: String?
    /// The cluster's superuser.
    public static let role = "descent"

    /// The cluster of this test process, started on first use; nil (with the reason printed once) when
    /// PostgreSQL is not installed or does not start.
    public static var shared: PostgresCluster? { sharedCluster.value }

    private static let sharedCluster = LazyCluster()

    /// Whether the tests that need PostgreSQL can run here.
    public static var isAvailable: Bool { shared != nil }

    init(port: Int, folder: URL, binaries: URL, user: String?) {
        self.port = port
        self.folder = folder
        self.binaries = binaries
        self.user = user
    }

    /// A fresh, empty database on the cluster; its URL for `descent serve --database`.
    public func makeDatabase() throws -> String {
        let name = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try run("createdb", ["-h", "127.0.0.1", "-p", String(port), "-U", Self.role, name])
        return url(database: name)
    }

    public func url(database: String) -> String {
        "postgres://\(Self.role)@127.0.0.1:\(port)/\(database)"
    }

    /// The cluster's own certificate authority (PEM): it signed the server's certificate, for localhost
    /// and 127.0.0.1. The cluster takes TLS and plain connections alike.
    public var certificateAuthority: URL { folder.appendingPathComponent("ca.pem") }

    /// Makes the CA and the server's certificate and key in the cluster's folder, owned by its user.
    func makeCertificates() throws {
        let openssl = "/usr/bin/openssl", path = folder.path
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try Data("subjectAltName=DNS:localhost,IP:127.0.0.1\n".utf8).write(to: folder.appendingPathComponent("san.ext"))
        try runProgram(openssl, ["req", "-x509"] + curve + ["-days", "7", "-keyout", "\(path)/ca.key", "-out", "\(path)/ca.pem",
                                                           "-subj", "/CN=descent test CA"])
        try runProgram(openssl, ["req"] + curve + ["-keyout", "\(path)/server.key", "-out", "\(path)/server.csr", "-subj", "/CN=localhost"])
        try runProgram(openssl, ["x509", "-req", "-in", "\(path)/server.csr", "-CA", "\(path)/ca.pem", "-CAkey", "\(path)/ca.key",
                                 "-CAcreateserial", "-days", "7", "-out", "\(path)/server.pem", "-extfile", "\(path)/san.ext"])
        // PostgreSQL refuses a key others may read.
        guard chmod("\(path)/server.key", 0o600) == 0 else { throw ClusterFailure("could not chmod the server key") }
    }

    /// Runs one of the cluster's binaries as the cluster's user; throws with its output when it fails.
    ///
    /// posix_spawn and waitpid, not Foundation's Process: its exit is noticed on a Dispatch queue, which
    /// tests blocked on this very call (waiting for the shared cluster) can starve on a 2-core machine.
    @discardableResult
    func run(_ tool: String, _ arguments: [String]) throws -> String {
        try runProgram(binaries.appendingPathComponent(tool).path, arguments)
    }

    /// The same for any program (openssl), as the cluster's user.
    @discardableResult
    func runProgram(_ path: String, _ arguments: [String]) throws -> String {
        let tool = URL(fileURLWithPath: path).lastPathComponent
        // setpriv, not runuser or su: no PAM session and no terminal handling, which can stop a
        // process run from a shell with job control (SIGTTOU).
        let argv = user.map { ["/usr/bin/setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups", "--", path] } ?? [path]
        let command = argv + arguments
        // A file, not a pipe: the server pg_ctl starts must not hold our end open.
        let outputPath = "/tmp/descent-pg-\(UUID().uuidString).out"
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArguments = command.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw ClusterFailure("could not start \(command[0]): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // Exited normally with status 0 (the low 7 bits are the terminating signal, 0 for a normal exit).
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw ClusterFailure("\(tool) \(arguments.joined(separator: " ")) failed (wait status \(status)): \(text)")
        }
        return text
    }

    static func start() throws -> PostgresCluster {
        guard let binaries = findBinaries() else {
            throw ClusterFailure("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install postgresql-15)")
        }
        stopClustersOfDeadProcesses(binaries: binaries)
        let isRoot = getuid() == 0
        let user: String? = isRoot ? "65534" : nil  // nobody
        let folder = URL(fileURLWithPath: "/tmp").appendingPathComponent("descent-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if isRoot {
            // The cluster's user must own its folder, and reach it: /tmp is world-searchable.
            guard chown(folder.path, 65534, 65534) == 0 else { throw ClusterFailure("could not give \(folder.path) to nobody") }
        }
        // Who started it: a test process that crashed (no exit handler) leaves its cluster to the next run.
        try Data("\(getpid())".utf8).write(to: folder.appendingPathComponent("owner.pid"))
        let data = folder.appendingPathComponent("data")
        var lastError: Error?
        for _ in 0..<3 {
            let cluster = PostgresCluster(port: ServerConfiguration.freeLoopbackPort(), folder: folder, binaries: binaries, user: user)
            do {
                if !FileManager.default.fileExists(atPath: data.path) {
                    try cluster.run("initdb", ["-D", data.path, "-U", role, "--auth=trust", "-E", "UTF8", "--no-sync"])
                    try cluster.makeCertificates()
                }
                try cluster.startServer()
                return cluster
            } catch {
                lastError = error
            }
        }
        throw lastError ?? ClusterFailure("the cluster did not start")
    }

    /// Stops and removes the clusters of test processes that are gone (crashed before their exit handler).
    static func stopClustersOfDeadProcesses(binaries: URL) {
        let tmp = URL(fileURLWithPath: "/tmp")
        let folders = ((try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? []).filter { $0.hasPrefix("descent-pg-") }
        for name in folders {
            let folder = tmp.appendingPathComponent(name)
            guard let text = try? String(contentsOf: folder.appendingPathComponent("owner.pid"), encoding: .utf8),
                  let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                  kill(pid, 0) == -1, errno == ESRCH
            else { continue }
            PostgresCluster(port: 0, folder: folder, binaries: binaries, user: getuid() == 0 ? "65534" : nil).stop()
        }
    }

    /// Starts `postgres` on the cluster's folder and port. Speed over durability: the cluster lives for one test run.
    func startServer() throws {
        try run("pg_ctl", [
            "-D", folder.appendingPathComponent("data").path, "-l", folder.appendingPathComponent("server.log").path, "-w", "-t", "60", "-o",
            "-c listen_addresses=127.0.0.1 -p \(port) -c unix_socket_directories=\(folder.path) -c fsync=off "
                + "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                + "-c ssl=on -c ssl_cert_file=\(folder.path)/server.pem -c ssl_key_file=\(folder.path)/server.key",
            "start",
        ])
    }

    /// A cluster of the caller's own (one it may restart: `restart(downFor:)`), which it must `stop()`.
    public static func startPrivate() throws -> PostgresCluster { try start() }

    /// Stops the server (fast shutdown: clients are disconnected), waits, and starts it again on the same port.
    public func restart(downFor seconds: Double) throws {
        try run("pg_ctl", ["-D", folder.appendingPathComponent("data").path, "stop", "-m", "fast", "-w"])
        Thread.sleep(forTimeInterval: seconds)
        try startServer()
    }

    /// Stops the server at once and removes its folder.
    public func stop() {
        _ = try? run("pg_ctl", ["-D", folder.appendingPathComponent("data").path, "stop", "-m", "immediate"])
        try? FileManager.default.removeItem(at: folder)
    }

    static func findBinaries() -> URL? {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let bin = URL(fileURLWithPath: root).appendingPathComponent(version).appendingPathComponent("bin")
            if FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("initdb").path) { return bin }
        }
        return nil
    }
}

/// Starts the shared cluster once, and stops it when the test process exits.
private final class LazyCluster: @unchecked Sendable {
    private let lock = NSLock()
    private var started = false
    private var cluster: PostgresCluster?

    var value: PostgresCluster? {
        lock.lock()
        defer { lock.unlock() }
        if !started {
            started = true
            do {
                let cluster = try PostgresCluster.start()
                self.cluster = cluster
                runningCluster = cluster
                atexit { runningCluster?.stop() }
                print("[figures] PostgreSQL test cluster on 127.0.0.1:\(cluster.port), folder \(cluster.folder.path)")
            } catch {
                print("PostgreSQL tests cannot run: \(error)")
            }
        }
        return cluster
    }
}

/// What the exit handler stops (a C function pointer cannot capture it).
nonisolated(unsafe) private var runningCluster: PostgresCluster?

public struct ClusterFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
