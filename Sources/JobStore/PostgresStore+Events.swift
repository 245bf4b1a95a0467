import Foundation
import Logging
import PostgresNIO

/// LISTEN/NOTIFY on the `descent_events` channel: the event bus of a fleet on PostgreSQL.
/// NOTIFY payloads are limited to 8000 bytes; job events are far smaller.
extension PostgresStore: JobEventBus {
    static let eventChannel = "descent_events"

    /// Sends the payload with `pg_notify` on a serial queue: in order, without making the publisher wait.
    public func broadcast(_ payload: String) {
        notifications.async { [self] in
            do {
                try query("SELECT pg_notify(\(Self.eventChannel), \(payload))")
            } catch {
                PostgresConnectionPool.logger.warning("could not broadcast a job event: \(error)")
            }
        }
    }

    /// Listens on a connection of its own, reopened (after a second) whenever it closes; events
    /// broadcast while it is closed are not seen here.
    public func listen(_ handler: @escaping @Sendable (String) -> Void) throws {
        let pool = self.pool
        let connection = try Self.startListening(pool: pool, handler: handler)
        let thread = Thread {
            var connection = connection
            while !pool.isClosed {
                Thread.sleep(forTimeInterval: 1)
                guard connection.isClosed, !pool.isClosed else { continue }
                if let reopened = try? Self.startListening(pool: pool, handler: handler) { connection = reopened }
            }
            _ = try? connection.close().wait()
        }
        thread.name = "descent-listen"
        thread.start()
    }

    private static func startListening(pool: PostgresConnectionPool, handler: @escaping @Sendable (String) -> Void) throws
        -> PostgresConnection
    {
        let connection = try pool.makeConnection()
        connection.addListener(channel: eventChannel) { _, notification in handler(notification.payload) }
        try run("LISTEN descent_events", on: connection)
        return connection
    }
}
