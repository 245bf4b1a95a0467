import Foundation
import GRDB

/// The application database: owns the connection and makes sure the schema is migrated.
/// It is the real `JobRepository`, `DatasetRepository`, `StudyRepository` and `TokenRepository`.
public struct AppDatabase: Sendable {
    /// A `DatabasePool` (WAL: readers never wait for the writer) or, in memory, a `DatabaseQueue`.
    let writer: any DatabaseWriter

    /// Runs the pending migrations of `Migrations/` on `writer`; with `lastMigration` (tests of
    /// upgrades from an older schema), only those up to that file.
    init(_ writer: any DatabaseWriter, upTo lastMigration: String? = nil) throws {
        self.writer = writer
        if let lastMigration {
            try Self.makeMigrator().migrate(writer, upTo: lastMigration)
        } else {
            try Self.makeMigrator().migrate(writer)
        }
    }

    /// Opens (or creates) the database file, creating its folder if needed.
    public static func open(path: String) throws -> AppDatabase {
        try open(path: path, upTo: nil)
    }

    static func open(path: String, upTo lastMigration: String?) throws -> AppDatabase {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return try AppDatabase(DatabasePool(path: path, configuration: makeConfiguration()), upTo: lastMigration)
    }

    /// A fresh, private, in-memory database (for tests).
    public static func inMemory() throws -> AppDatabase {
        try AppDatabase(DatabaseQueue(configuration: makeConfiguration()))
    }

    /// File names of the migrations applied to this database, in the order they ran.
    public func appliedMigrations() throws -> [String] {
        try writer.read { db in try DatabaseMigrator().appliedIdentifiers(db).sorted() }
    }

    static func makeConfiguration() -> Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true  // metrics → jobs ON DELETE CASCADE relies on it
        // Another process (a second server, the sqlite3 shell) may hold the write lock briefly:
        // wait for it instead of failing at once.
        configuration.busyMode = .timeout(10)
        return configuration
    }
}

// MARK: - Migrations

extension AppDatabase {
    /// One migration per `.sql` file of the `Migrations` resource folder (the top-level
    /// `migrations/` of the repository is a symlink to it), applied in file-name order and
    /// recorded under the file name in `grdb_migrations`, so each runs exactly once.
    static func makeMigrator() throws -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for file in try migrationFiles() {
            let sql = try String(contentsOf: file, encoding: .utf8)
            migrator.registerMigration(file.lastPathComponent) { db in
                try db.execute(sql: sql)
            }
        }
        return migrator
    }

    static func migrationFiles() throws -> [URL] {
        guard let folder = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw JobStoreError.migrationsNotFound("no Migrations folder in \(Bundle.module.bundlePath)")
        }
        // Fails on a dangling folder (e.g. a symlink copied as is) instead of yielding no tables.
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        guard !names.isEmpty else {
            throw JobStoreError.migrationsNotFound("no .sql file in \(folder.path)")
        }
        return names.map { folder.appendingPathComponent($0) }
    }
}

// MARK: - Raw SQL, for the tests that probe the schema itself

extension AppDatabase {
    func execute(sql: String) throws {
        try writer.write { db in try db.execute(sql: sql) }
    }

    /// The first column of every row, as text.
    func strings(sql: String) throws -> [String] {
        try writer.read { db in try String.fetchAll(db, sql: sql) }
    }

    /// The `detail` lines of `EXPLAIN QUERY PLAN`.
    func queryPlan(sql: String) throws -> [String] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN \(sql)").map { $0["detail"] }
        }
    }
}
