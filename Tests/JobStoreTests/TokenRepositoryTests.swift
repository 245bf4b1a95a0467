import Foundation
import Testing
@testable import JobStore

@Suite("TokenRepository")
struct TokenRepositoryTests {
    @Test("a new token is dsk_ and 43 base64url characters, and authenticates its tenant")
    func createdTokenAuthenticatesItsTenant() throws {
        let database = try AppDatabase.inMemory()
        let (record, token) = try database.createToken(tenant: "acme")

        #expect(token.hasPrefix("dsk_") && token.count == 4 + 43)
        #expect(token.dropFirst(4).allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        #expect(record.id.hasPrefix("tok_") && record.tenant == "acme" && !record.isRevoked)
        #expect(record.tokenHash == AccessToken.hash(token))
        #expect(try database.tenant(authenticatedBy: token) == "acme")
    }

    @Test("the stored hash is the SHA-256 of the token, in lowercase hex")
    func hashIsSHA256() {
        #expect(AccessToken.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(AccessToken.hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("the database file holds the token's hash and never the token itself")
    func databaseFileHasNoPlaintext() throws {
        try withTemporaryDirectory { folder in
            let path = folder.appendingPathComponent("descent.sqlite").path
            let token: String, hash: String
            do {
                let database = try AppDatabase.open(path: path)
                (_, token) = try database.createToken(tenant: "acme")
                hash = AccessToken.hash(token)
                _ = try database.listTokens()
            }
            // Every file SQLite wrote: the database, its write-ahead log and shared memory.
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("descent.sqlite") }
            #expect(files.contains("descent.sqlite"))
            var bytes = Data()
            for file in files { bytes.append(try Data(contentsOf: folder.appendingPathComponent(file))) }
            #expect(bytes.range(of: Data(hash.utf8)) != nil, "the hash should be stored")
            #expect(bytes.range(of: Data(token.utf8)) == nil, "the token itself is in \(files)")
            #expect(bytes.range(of: Data(token.dropFirst(4).utf8)) == nil, "the token's random part is in \(files)")
        }
    }

    @Test("an unknown token, or one that differs by a character, authenticates nobody")
    func unknownTokenIsRefused() throws {
        let database = try AppDatabase.inMemory()
        let (_, token) = try database.createToken(tenant: "acme")
        #expect(try database.tenant(authenticatedBy: AccessToken.generate()) == nil)
        #expect(try database.tenant(authenticatedBy: String(token.dropLast()) + (token.last == "A" ? "B" : "A")) == nil)
        #expect(try database.tenant(authenticatedBy: "") == nil)
        #expect(try database.tenant(authenticatedBy: AccessToken.hash(token)) == nil, "the hash is not a token")
    }

    @Test("a revoked token authenticates nobody; revoking again keeps the first time")
    func revokedTokenIsRefused() throws {
        let database = try AppDatabase.inMemory()
        let (record, token) = try database.createToken(tenant: "acme")
        let (_, other) = try database.createToken(tenant: "acme")

        let revoked = try #require(try database.revokeToken(id: record.id))
        #expect(revoked.isRevoked)
        #expect(try database.tenant(authenticatedBy: token) == nil)
        #expect(try database.tenant(authenticatedBy: other) == "acme", "the tenant's other token still works")
        let again = try #require(try database.revokeToken(id: record.id))
        #expect(again.revokedAt == revoked.revokedAt)
        #expect(try database.revokeToken(id: "tok_unknown") == nil)
    }

    @Test("tokens are listed oldest first with their tenants, revoked ones included")
    func listShowsEveryToken() throws {
        let database = try AppDatabase.inMemory()
        let first = try database.createToken(tenant: "acme").record
        let second = try database.createToken(tenant: "globex").record
        _ = try database.revokeToken(id: first.id)

        let listed = try database.listTokens()
        #expect(listed.map(\.id) == [first.id, second.id])
        #expect(listed.map(\.tenant) == ["acme", "globex"])
        #expect(listed.map(\.isRevoked) == [true, false])
    }

    @Test("tenant names are 1 to 64 letters, digits, - and _; the store and the schema refuse others")
    func tenantNamesAreChecked() throws {
        let database = try AppDatabase.inMemory()
        for name in ["acme", "ACME-2", "team_b", String(repeating: "x", count: 64)] {
            #expect(Tenant.isValidName(name), "\(name)")
            _ = try database.createToken(tenant: name)
        }
        for name in ["", "a b", "../x", "a/b", "x\u{0}y", "é", String(repeating: "x", count: 65)] {
            #expect(!Tenant.isValidName(name), "\(name)")
            #expect(throws: JobStoreError.invalidTenantName(name)) { try database.createToken(tenant: name) }
        }
        #expect(throws: (any Error).self) {
            try database.execute(sql: "INSERT INTO tokens (id, tenant, token_hash, created_at) VALUES ('tok_x', 'a/b', '\(AccessToken.hash("x"))', '2025-01-01')")
        }
        #expect(throws: (any Error).self) {
            try database.execute(sql: "INSERT INTO tokens (id, tenant, token_hash, created_at) VALUES ('tok_y', 'acme', 'not a hash', '2025-01-01')")
        }
    }

    @Test("generated tokens do not repeat")
    func tokensAreUnique() {
        let tokens = (0..<1000).map { _ in AccessToken.generate() }
        #expect(Set(tokens).count == 1000)
    }
}
