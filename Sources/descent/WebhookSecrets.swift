import ArgumentParser
import Foundation
import JobStore

/// `descent webhook-secret rotate --tenant NAME | list | remove --tenant NAME`: the secrets that sign a
/// tenant's webhook deliveries. Like `descent token`, an operator command on the server's machine.
struct WebhookSecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-secret",
        abstract: "Make, rotate, list and remove the secrets that sign tenants' webhooks (opens the database directly).",
        subcommands: [Rotate.self, List.self, Remove.self])

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new signing secret for a tenant (the first one, or a replacement) and print it; it is shown this once.")
        @Option(help: "The tenant whose deliveries it signs (auth off: default).") var tenant: String
        @Option(help: "Hours the replaced secret keeps signing too (0 to 8760), so receivers can switch without a gap.")
        var keepPreviousHours = 24.0
        @OptionGroup var database: TokenCommand.DatabaseOptions

        func validate() throws {
            guard Tenant.isValidName(tenant) else {
                throw ValidationError("--tenant must be 1 to 64 letters, digits, - and _, got \"\(tenant)\"")
            }
            guard (0...8760).contains(keepPreviousHours) else { throw ValidationError("--keep-previous-hours must be 0 to 8760") }
        }

        func run() throws {
            let secret = try database.open(mustExist: false)
                .rotateWebhookSecret(tenant: tenant, keepingPrevious: keepPreviousHours * 3600, now: Date())
            print(secret)
            FileHandle.standardError.write(Data("""
                webhook secret for tenant \(tenant): keep it now, it cannot be shown again. Every delivery carries
                X-Descent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with this secret>

                """.utf8))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenants that have a secret and when it was made (never the secrets).")
        @OptionGroup var database: TokenCommand.DatabaseOptions

        func run() throws {
            let secrets = try database.open(mustExist: true).listWebhookSecrets()
            guard !secrets.isEmpty else {
                print("no webhook secrets: deliveries go unsigned; make one with descent webhook-secret rotate --tenant NAME")
                return
            }
            for (tenant, created) in secrets { print("\(tenant)  \(TokenCommand.List.time(created))") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a tenant's secrets: its deliveries go unsigned from now on.")
        @Option(help: "The tenant.") var tenant: String
        @OptionGroup var database: TokenCommand.DatabaseOptions

        func run() throws {
            guard try database.open(mustExist: true).removeWebhookSecret(tenant: tenant) else {
                FileHandle.standardError.write(Data("error: tenant \(tenant) has no webhook secret\n".utf8))
                throw ExitCode.failure
            }
            print("removed the webhook secret of \(tenant)")
        }
    }
}
