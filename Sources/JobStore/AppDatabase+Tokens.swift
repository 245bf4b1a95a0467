import Foundation
import GRDB

extension AppDatabase: TokenRepository {
    public func createToken(tenant: String) throws -> (record: TokenRecord, token: String) {
        guard Tenant.isValidName(tenant) else { throw JobStoreError.invalidTenantName(tenant) }
        let token = AccessToken.generate()
        let record = try writer.write { db in
            try TokenRecord(tenant: tenant, tokenHash: AccessToken.hash(token)).insertAndFetch(db)
        }
        return (record, token)
    }

    public func tenant(authenticatedBy token: String) throws -> String? {
        // The UNIQUE token_hash column's index serves this lookup.
        try writer.read { db in
            try String.fetchOne(db, sql: "SELECT tenant FROM tokens WHERE token_hash = ? AND revoked_at IS NULL",
                                arguments: [AccessToken.hash(token)])
        }
    }

    public func listTokens() throws -> [TokenRecord] {
        try writer.read { db in try TokenRecord.order(Column("created_at"), Column("rowid")).fetchAll(db) }
    }

    public func revokeToken(id: String) throws -> TokenRecord? {
        try writer.write { db in
            try db.execute(sql: "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [Date(), id])
            return try TokenRecord.fetchOne(db, key: id)
        }
    }
}
