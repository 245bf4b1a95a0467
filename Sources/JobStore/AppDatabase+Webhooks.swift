import Foundation
import GRDB

/// One attempt to POST a job's webhook.
public struct WebhookDelivery: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "webhook_deliveries"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: Int64?
    public var jobId: String
    public var event: String
    public var url: String
    public var attempt: Int
    public var statusCode: Int?
    public var error: String?
    public var delivered: Bool
    public var durationMs: Double
    public var attemptedAt: Date

    public init(jobId: String, event: String, url: String, attempt: Int, statusCode: Int?, error: String?, delivered: Bool,
                durationMs: Double, attemptedAt: Date) {
        self.jobId = jobId
        self.event = event
        self.url = url
        self.attempt = attempt
        self.statusCode = statusCode
        self.error = error
        self.delivered = delivered
        self.durationMs = durationMs
        self.attemptedAt = attemptedAt
    }
}

/// The delivery log of webhooks and the tenants' signing secrets.
public protocol WebhookDeliveryRepository: Sendable {
    /// Records one attempt; a job deleted meanwhile makes this a no-op.
    func recordDelivery(_ delivery: WebhookDelivery) throws
    /// Oldest first.
    func deliveries(jobId: String) throws -> [WebhookDelivery]
    /// Makes a new signing secret for `tenant` and returns it (shown once by the operator command).
    /// The secret it replaces keeps signing until `now + keepingPrevious`; 0 drops it at once.
    /// `JobStoreError.invalidTenantName` for a name `Tenant.isValidName` refuses.
    func rotateWebhookSecret(tenant: String, keepingPrevious: TimeInterval, now: Date) throws -> String
    /// The secrets that sign `tenant`'s deliveries at `now`: the current one, then the previous one
    /// while it is kept. Empty: the tenant's deliveries go unsigned.
    func webhookSecrets(tenant: String, now: Date) throws -> [String]
    /// Forgets the tenant's secrets (deliveries go unsigned); false if it had none.
    func removeWebhookSecret(tenant: String) throws -> Bool
    /// Tenants with a secret and when it was made, by tenant name (never the secrets).
    func listWebhookSecrets() throws -> [(tenant: String, createdAt: Date)]
}

/// One row of `webhook_secrets`.
struct WebhookSecretRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "webhook_secrets"
    static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    var tenant: String
    var secret: String
    var createdAt: Date
    var previousSecret: String?
    var previousExpiresAt: Date?

    /// The secrets in force at `now`, current first.
    func secrets(at now: Date) -> [String] {
        guard let previousSecret, let previousExpiresAt, previousExpiresAt > now else { return [secret] }
        return [secret, previousSecret]
    }
}

extension AppDatabase: WebhookDeliveryRepository {
    public func recordDelivery(_ delivery: WebhookDelivery) throws {
        try writer.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM jobs WHERE id = ?", arguments: [delivery.jobId]) == true else { return }
            var delivery = delivery
            delivery.id = nil
            try delivery.insert(db)
        }
    }

    public func deliveries(jobId: String) throws -> [WebhookDelivery] {
        try writer.read { db in
            try WebhookDelivery.filter(Column("job_id") == jobId).order(Column("id")).fetchAll(db)
        }
    }

    public func rotateWebhookSecret(tenant: String, keepingPrevious: TimeInterval, now: Date) throws -> String {
        guard Tenant.isValidName(tenant) else { throw JobStoreError.invalidTenantName(tenant) }
        let secret = WebhookSecret.generate()
        try writer.write { db in
            let old = try WebhookSecretRow.fetchOne(db, key: tenant)
            let kept = keepingPrevious > 0 ? old : nil
            try WebhookSecretRow(tenant: tenant, secret: secret, createdAt: now, previousSecret: kept?.secret,
                                 previousExpiresAt: kept.map { _ in now.addingTimeInterval(keepingPrevious) }).save(db)
        }
        return secret
    }

    public func webhookSecrets(tenant: String, now: Date) throws -> [String] {
        try writer.read { db in try WebhookSecretRow.fetchOne(db, key: tenant)?.secrets(at: now) ?? [] }
    }

    public func removeWebhookSecret(tenant: String) throws -> Bool {
        try writer.write { db in try WebhookSecretRow.deleteOne(db, key: tenant) }
    }

    public func listWebhookSecrets() throws -> [(tenant: String, createdAt: Date)] {
        try writer.read { db in try WebhookSecretRow.order(Column("tenant")).fetchAll(db).map { ($0.tenant, $0.createdAt) } }
    }
}
