import Crypto
import Foundation

/// Bearer tokens: `dsk_` and 32 random bytes in base64url (43 characters, no padding). A token is
/// shown once, when it is made; the store keeps only its SHA-256, so a copy of the database lets
/// nobody in. 256 random bits make a salt or a slow hash unnecessary: there is nothing to guess.
public enum AccessToken {
    public static let prefix = "dsk_"

    /// A new token from the system's cryptographically secure generator.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let base64url = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return prefix + base64url
    }

    /// Lowercase hex SHA-256 of the token's UTF-8 bytes: what the store keeps and looks up.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
