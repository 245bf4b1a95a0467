import Dispatch
import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// The job store of a fleet: several `descent serve` processes, on one or more hosts, share one
/// queue in PostgreSQL (`--database postgres://user@host:port/db`). It is the same
/// `JobRepository`, `DatasetRepository`, `StudyRepository`, `TokenRepository` and
/// `WebhookDeliveryRepository` as `AppDatabase`, with the same semantics, plus leases:
///
/// - claiming takes the next queued job with `SELECT … FOR UPDATE SKIP LOCKED`, so nodes never
///   wait for each other and a job is handed out once;
/// - a claimed job carries `lease_owner` (this node's id) and `lease_expires_at`; the node's
///   heartbeat (`renewLeases(jobIds:)`) pushes the expiry on while it trains, and any node's sweep
///   (`requeueExpiredLeases()`) puts a job whose lease ran out back in the queue, where another
///   node claims it and resumes it from its checkpoint (on the shared data folder);
/// - writes about a running job (epochs, finishing, requeueing) only count when this node still
///   holds its lease, so a node that lost a job cannot overwrite the attempt that replaced it.
///
/// The repository methods are synchronous like `AppDatabase`'s: each one runs its statements on a
/// connection of a small pool whose connections live on their own event loop, and waits for them.
/// So they may be called from worker threads and async handlers alike, never from that event loop.
public struct PostgresStore: Sendable {
    /// Who claims jobs through this store: `lease_owner` of the jobs it runs.
    public let nodeId: String
    /// How long a claimed job is this node's without a heartbeat.
    public let leaseSeconds: Double
    let pool: PostgresConnectionPool
    /// Where `broadcast` sends its NOTIFYs from, one after the other.
    let notifications = DispatchQueue(label: "descent.postgres.notify")

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]`) and applies the pending
    /// migrations of `PostgresMigrations/` (one node at a time: see `migrate()`).
    public static func open(url: String, nodeId: String, leaseSeconds: Double = 30, maxConnections: Int = 8) throws -> PostgresStore {
        let configuration = try Self.configuration(url: url)
        let store = PostgresStore(nodeId: nodeId, leaseSeconds: leaseSeconds,
                                  pool: PostgresConnectionPool(configuration: configuration, maxConnections: maxConnections))
        do {
            try store.migrate()
        } catch let error as PSQLError {
            store.close()
            // PSQLError's description hides everything; its reflection tells the operator what went wrong.
            throw PostgresStoreError.cannotOpen(database: "\(configuration.username)@\(configuration.host ?? "?"):\(configuration.port ?? 5432)/\(configuration.database ?? "")",
                                                reason: String(reflecting: error))
        }
        return store
    }

    /// Whether `text` names a PostgreSQL database rather than a SQLite file.
    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    static func configuration(url text: String) throws -> PostgresConnection.Configuration {
        guard isPostgresURL(text), let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            throw PostgresStoreError.invalidURL(text)
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard let user = components.user, !user.isEmpty, !database.isEmpty else { throw PostgresStoreError.invalidURL(text) }
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard ["sslmode", "sslrootcert"].contains(item.name), let value = item.value, !value.isEmpty else {
                throw PostgresStoreError.invalidParameter("\(item.name): only sslmode and sslrootcert are understood, each with a value")
            }
            parameters[item.name] = value
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: components.password?.removingPercentEncoding, database: database,
            tls: try tls(mode: parameters["sslmode"] ?? "prefer", rootCertificate: parameters["sslrootcert"]))
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    /// libpq's `sslmode`: `disable`; `prefer` (the default: TLS when the server offers it, unverified);
    /// `require` (TLS or no connection; unverified, unless `sslrootcert` names a CA, which then verifies
    /// as `verify-ca` does); `verify-ca` (the certificate chains to `sslrootcert`, or to the system's CAs);
    /// `verify-full` (that, and it names the URL's host).
    static func tls(mode: String, rootCertificate: String?) throws -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let rootCertificate {
            guard FileManager.default.isReadableFile(atPath: rootCertificate) else {
                throw PostgresStoreError.invalidParameter("sslrootcert: no readable file at \(rootCertificate)")
            }
            tls.trustRoots = .file(rootCertificate)
        }
        switch mode {
        case "disable": return .disable
        case "prefer", "require":
            tls.certificateVerification = mode == "require" && rootCertificate != nil ? .noHostnameVerification : .none
        case "verify-ca": tls.certificateVerification = .noHostnameVerification
        case "verify-full": tls.certificateVerification = .fullVerification
        default:
            throw PostgresStoreError.invalidParameter("sslmode: \(mode) is not one of disable, prefer, require, verify-ca, verify-full")
        }
        let context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: tls) } catch {
            throw PostgresStoreError.invalidParameter("sslrootcert: \(rootCertificate ?? "the system's CAs") could not be loaded (\(error))")
        }
        return mode == "prefer" ? .prefer(context) : .require(context)
    }

    /// Closes the connections (tests; a server keeps its store for its lifetime).
    public func close() {
        pool.close()
    }
}

public enum PostgresStoreError: Error, Equatable, CustomStringConvertible {
    case invalidURL(String)
    /// A query parameter of the URL that is unknown or has a bad value (`sslmode`, `sslrootcert`).
    case invalidParameter(String)
    case noPool
    /// Connecting or migrating failed (unreachable server, unknown database or role…).
    case cannotOpen(database: String, reason: String)

    public var description: String {
        switch self {
        case .invalidURL(let text):
            "not a PostgreSQL URL: \(text) (expected postgres://user[:password]@host[:port]/database)"
        case .invalidParameter(let message): "the PostgreSQL URL's \(message)"
        case .noPool: "the connection pool is closed"
        case .cannotOpen(let database, let reason): "cannot open the PostgreSQL database \(database): \(reason)"
        }
    }
}

// MARK: - Statements

extension PostgresStore {
    /// Runs one statement on a pooled connection and returns its rows.
    @discardableResult
    func query(_ query: PostgresQuery) throws -> [PostgresRandomAccessRow] {
        try pool.withConnection { connection in try Self.run(query, on: connection) }
    }

    /// Runs `body` in one transaction (READ COMMITTED, PostgreSQL's default), committed when it
    /// returns and rolled back when it throws.
    func transaction<T>(_ body: (PostgresTransaction) throws -> T) throws -> T {
        try pool.withConnection { connection in
            try Self.run("BEGIN", on: connection)
            do {
                let value = try body(PostgresTransaction(connection: connection))
                try Self.run("COMMIT", on: connection)
                return value
            } catch {
                // A connection that cannot even roll back is dropped by the pool (closed).
                do { try Self.run("ROLLBACK", on: connection) } catch { _ = try? connection.close().wait() }
                throw error
            }
        }
    }

    @discardableResult
    static func run(_ query: PostgresQuery, on connection: PostgresConnection) throws -> [PostgresRandomAccessRow] {
        try connection.query(query, logger: PostgresConnectionPool.logger).wait().rows.map { $0.makeRandomAccess() }
    }

    /// Rows a statement changed (its command tag).
    static func changes(_ query: PostgresQuery, on connection: PostgresConnection) throws -> Int {
        try connection.query(query, logger: PostgresConnectionPool.logger).wait().metadata.rows ?? 0
    }
}

/// The statements of one transaction, on its connection.
struct PostgresTransaction {
    let connection: PostgresConnection

    @discardableResult
    func query(_ query: PostgresQuery) throws -> [PostgresRandomAccessRow] {
        try PostgresStore.run(query, on: connection)
    }

    func changes(_ query: PostgresQuery) throws -> Int {
        try PostgresStore.changes(query, on: connection)
    }

    /// Serializes the transactions that take the same lock (released at commit or rollback): the
    /// check-then-change sequences (limits, quotas, idempotency keys) of one tenant run one at a time,
    /// across every node.
    func lock(_ name: String) throws {
        try query("SELECT pg_advisory_xact_lock(hashtext(\(name)))")
    }
}

// MARK: - Migrations

extension PostgresStore {
    /// Applies the `.sql` files of `PostgresMigrations/` that `schema_migrations` does not list, in
    /// file-name order, in one transaction that first takes an advisory lock: nodes starting at once
    /// queue on the lock, and the ones after the first find everything applied.
    func migrate() throws {
        let files = try Self.migrationFiles()
        try transaction { transaction in
            try transaction.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))")
            try transaction.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    name text NOT NULL PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """)
            let applied = Set(try transaction.query("SELECT name FROM schema_migrations").map { try $0["name"].decode(String.self) })
            for file in files where !applied.contains(file.lastPathComponent) {
                for statement in Self.statements(of: try String(contentsOf: file, encoding: .utf8)) {
                    try transaction.query(PostgresQuery(unsafeSQL: statement))
                }
                try transaction.query("INSERT INTO schema_migrations (name) VALUES (\(file.lastPathComponent))")
            }
        }
    }

    /// An arbitrary constant: the key of the advisory lock migrations take.
    static let migrationLock: Int64 = 0x6465_7363_656e_74  // "descent"

    /// File names of the migrations applied to this database, in order.
    public func appliedMigrations() throws -> [String] {
        try query("SELECT name FROM schema_migrations ORDER BY name").map { try $0["name"].decode(String.self) }
    }

    static func migrationFiles() throws -> [URL] {
        guard let folder = Bundle.module.url(forResource: "PostgresMigrations", withExtension: nil) else {
            throw JobStoreError.migrationsNotFound("no PostgresMigrations folder in \(Bundle.module.bundlePath)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        guard !names.isEmpty else { throw JobStoreError.migrationsNotFound("no .sql file in \(folder.path)") }
        return names.map { folder.appendingPathComponent($0) }
    }

    /// The statements of a migration file: comment lines dropped, split where a line ends with `;`
    /// (the extended protocol runs one statement at a time).
    static func statements(of sql: String) -> [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("--") || trimmed.isEmpty { continue }
            current.append(line)
            if trimmed.hasSuffix(";") {
                statements.append(current.joined(separator: "\n").trimmingCharacters(in: CharacterSet(charactersIn: "; \n")))
                current = []
            }
        }
        let rest = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { statements.append(rest) }
        return statements
    }
}

// MARK: - Connection pool

/// A few connections, opened on demand, on an event loop of their own (so waiting for a query
/// never blocks the loop that must answer it). A connection is used by one caller at a time.
final class PostgresConnectionPool: Sendable {
    static let logger: Logger = {
        var logger = Logger(label: "descent.postgres")
        logger.logLevel = .warning
        return logger
    }()

    let configuration: PostgresConnection.Configuration
    let group: MultiThreadedEventLoopGroup
    private let slots: DispatchSemaphore
    private let state = Mutex(State())

    private struct State {
        var idle: [PostgresConnection] = []
        var nextId = 0
        var isClosed = false
    }

    init(configuration: PostgresConnection.Configuration, maxConnections: Int) {
        self.configuration = configuration
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        slots = DispatchSemaphore(value: max(1, maxConnections))
    }

    /// A connection of its own, outside the pool (LISTEN).
    func makeConnection() throws -> PostgresConnection {
        let id = state.withLock { state -> Int in
            state.nextId += 1
            return state.nextId
        }
        return try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: Self.logger).wait()
    }

    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        let reused = try state.withLock { state -> PostgresConnection? in
            if state.isClosed { throw PostgresStoreError.noPool }
            while let connection = state.idle.popLast() {
                if !connection.isClosed { return connection }
            }
            return nil
        }
        let connection = try reused ?? makeConnection()
        let value: T
        do {
            value = try body(connection)
        } catch {
            giveBack(connection)
            throw error
        }
        giveBack(connection)
        return value
    }

    private func giveBack(_ connection: PostgresConnection) {
        guard !connection.isClosed else { return }
        let keep = state.withLock { state -> Bool in
            guard !state.isClosed else { return false }
            state.idle.append(connection)
            return true
        }
        if !keep { _ = try? connection.close().wait() }
    }

    var isClosed: Bool { state.withLock { $0.isClosed } }

    /// A store dropped without `close()` (a test's) closes its connections: PostgresNIO requires it.
    deinit {
        let connections = state.withLock { state -> [PostgresConnection] in
            defer { state.idle = [] }
            return state.idle
        }
        for connection in connections where !connection.eventLoop.inEventLoop { _ = try? connection.close().wait() }
        let group = self.group
        DispatchQueue.global().async { try? group.syncShutdownGracefully() }
    }

    func close() {
        let connections = state.withLock { state -> [PostgresConnection] in
            state.isClosed = true
            defer { state.idle = [] }
            return state.idle
        }
        for connection in connections { _ = try? connection.close().wait() }
        // After the listener (which looks every second) has closed its connection too.
        let group = self.group
        DispatchQueue.global().asyncAfter(deadline: .now() + 2) { try? group.syncShutdownGracefully() }
    }
}

// MARK: - Rows

extension PostgresRandomAccessRow {
    func value<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try self[column].decode(T.self)
    }

    /// A JSON text column decoded into `T` (the arrays of a dataset).
    func json<T: Decodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(try value(column, as: String.self).utf8))
    }

    func optionalJSON<T: Decodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let text = try value(column, as: String?.self) else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}

/// JSON text of an array or other value, as GRDB stores `Codable` array properties.
func jsonText<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
}
