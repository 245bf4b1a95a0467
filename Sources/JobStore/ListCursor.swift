import Foundation

/// Where the next page of a job list starts: just after this (created_at, id), the list's sort key.
/// `created_at` is kept as the store wrote it so the comparison is exact. Base64url: it goes in a
/// query string. Both stores' cursors (`AppDatabase`, `PostgresStore`).
struct ListCursor {
    var createdAt: String
    var id: String

    init(createdAt: String, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    init(decoding text: String) throws {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
              let parts = String(data: data, encoding: .utf8)?.split(separator: "|", omittingEmptySubsequences: false),
              parts.count == 2
        else {
            throw JobStoreError.invalidCursor(text)
        }
        createdAt = String(parts[0])
        id = String(parts[1])
    }

    var encoded: String {
        Data("\(createdAt)|\(id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
