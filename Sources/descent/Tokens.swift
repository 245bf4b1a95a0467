import ArgumentParser
import Foundation
import JobStore

/// `descent token create --tenant NAME | list | revoke ID`: access tokens for `descent serve --auth on`.
/// Admin commands for the server's machine: they open the data folder's database directly (the
/// server may be running; SQLite's WAL lets both in), not the HTTP API.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke access tokens (on the server's machine: opens the database directly).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct DatabaseOptions: ParsableArguments {
        @Option(name: .customLong("data-dir"), help: "The server's data folder (holds descent.sqlite).") var dataDirectory = "./data"
        @Option(help: "The server's --database: a SQLite file or a fleet's postgres://user@host:port/db.") var database: String?

        var databasePath: String {
            database ?? URL(fileURLWithPath: dataDirectory, isDirectory: true).appendingPathComponent("descent.sqlite").path
        }

        /// The store of tokens and webhook secrets; `mustExist` refuses to create a SQLite file (listing or revoking in a wrong folder).
        func open(mustExist: Bool) throws -> any TokenRepository & WebhookDeliveryRepository {
            // A database this makes holds webhook secrets in the clear: owner-only, as `descent serve` makes it.
            umask(0o077)
            if PostgresStore.isPostgresURL(databasePath) {
                return try PostgresStore.open(url: databasePath, nodeId: "descent-token", maxConnections: 1)
            }
            if mustExist, !FileManager.default.fileExists(atPath: databasePath) {
                FileHandle.standardError.write(Data("error: no database at \(databasePath); give the server's --data-dir\n".utf8))
                throw ExitCode.failure
            }
            return try AppDatabase.open(path: databasePath)
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token for a tenant and print it. It is shown this once: only its SHA-256 is stored.")
        @Option(help: "The tenant the token acts for: 1 to 64 letters, digits, - and _.") var tenant: String
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard Tenant.isValidName(tenant) else {
                throw ValidationError("--tenant must be 1 to 64 letters, digits, - and _, got \"\(tenant)\"")
            }
        }

        func run() throws {
            let (record, token) = try database.open(mustExist: false).createToken(tenant: tenant)
            // The token alone on standard output, so `TOKEN=$(descent token create …)` works.
            print(token)
            FileHandle.standardError.write(Data("""
                token \(record.id) for tenant \(record.tenant): keep it now, it cannot be shown again.
                Use it with: curl -H 'Authorization: Bearer \(token)' …, or DESCENT_TOKEN=… descent status

                """.utf8))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens: id, tenant, created, revoked (never the tokens themselves).")
        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print JSON instead of a table, for scripts.") var json = false

        func run() throws {
            let tokens = try database.open(mustExist: true).listTokens()
            if json {
                return printJSON(["tokens": tokens.map { token -> [String: Any] in
                    ["id": token.id, "tenant": token.tenant, "created_at": Self.time(token.createdAt),
                     "revoked_at": token.revokedAt.map(Self.time) as Any? ?? NSNull()]
                }])
            }
            guard !tokens.isEmpty else {
                print("no tokens; make one with descent token create --tenant NAME")
                return
            }
            let tenantWidth = max(6, tokens.map(\.tenant.count).max() ?? 0)
            print("id".padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + "tenant".padding(toLength: tenantWidth, withPad: " ", startingAt: 0)
                  + "  " + "created".padding(toLength: 20, withPad: " ", startingAt: 0) + "  revoked")
            for token in tokens {
                print("\(token.id)  \(token.tenant.padding(toLength: tenantWidth, withPad: " ", startingAt: 0))  \(Self.time(token.createdAt))  \(token.revokedAt.map(Self.time) ?? "-")")
            }
        }

        static func time(_ date: Date) -> String {
            date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: requests with it are refused (401) from now on.")
        @Argument(help: "The token's id (tok_…, from descent token list).") var id: String
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            guard let record = try database.open(mustExist: true).revokeToken(id: id) else {
                FileHandle.standardError.write(Data("error: no token with id \(id)\n".utf8))
                throw ExitCode.failure
            }
            print("revoked \(record.id) (tenant \(record.tenant)) at \(List.time(record.revokedAt ?? Date()))")
        }
    }
}
