import Foundation
import JobStore

/// The stores the server is built on: one SQLite `AppDatabase` (the default, one process) or one
/// `PostgresStore` shared by a fleet of servers (`--database postgres://…`). Either way every
/// repository is the same object.
public struct Stores: Sendable {
    public let jobs: any JobRepository
    public let datasets: any DatasetRepository
    public let studies: any StudyRepository
    public let tokens: any TokenRepository
    public let deliveries: any WebhookDeliveryRepository
    /// A fleet's event bus (PostgreSQL LISTEN/NOTIFY); nil for SQLite.
    public let eventBus: (any JobEventBus)?
    /// The SQLite file, for its size in `/metrics`; nil in memory and for PostgreSQL.
    public let databasePath: String?
    /// The heartbeat of a fleet's worker pool; nil for SQLite (no leases).
    public let heartbeatInterval: Double?

    init<Store: JobRepository & DatasetRepository & StudyRepository & TokenRepository & WebhookDeliveryRepository>(
        _ store: Store, eventBus: (any JobEventBus)?, databasePath: String?, heartbeatInterval: Double?
    ) {
        jobs = store
        datasets = store
        studies = store
        tokens = store
        deliveries = store
        self.eventBus = eventBus
        self.databasePath = databasePath
        self.heartbeatInterval = heartbeatInterval
    }

    /// Opens what `configuration.databasePath` names: nil for `<data-dir>/descent.sqlite`,
    /// `:memory:`, a SQLite file, or a `postgres://` URL (migrated on the way).
    public static func open(_ configuration: ServerConfiguration) throws -> Stores {
        switch configuration.databasePath {
        case ":memory:":
            return Stores(try AppDatabase.inMemory(), eventBus: nil, databasePath: nil, heartbeatInterval: nil)
        case let url? where PostgresStore.isPostgresURL(url):
            let store = try PostgresStore.open(url: url, nodeId: configuration.resolvedNodeId, leaseSeconds: configuration.leaseSeconds)
            // Three heartbeats per lease: a node that misses one or two keeps its jobs.
            return Stores(store, eventBus: store, databasePath: nil, heartbeatInterval: configuration.leaseSeconds / 3)
        case let path:
            let path = path ?? configuration.dataDirectory.appendingPathComponent("descent.sqlite").path
            return Stores(try AppDatabase.open(path: path), eventBus: nil, databasePath: path, heartbeatInterval: nil)
        }
    }
}
