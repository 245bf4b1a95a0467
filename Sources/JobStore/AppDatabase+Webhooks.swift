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

/// The delivery log of webhooks.
public protocol WebhookDeliveryRepository: Sendable {
    /// Records one attempt; a job deleted meanwhile makes this a no-op.
    func recordDelivery(_ delivery: WebhookDelivery) throws
    /// Oldest first.
    func deliveries(jobId: String) throws -> [WebhookDelivery]
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
}
