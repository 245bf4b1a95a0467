import Crypto
import Foundation

/// Bearer tokens: `dsk_` and 32 random bytes in base64url (43 characters, no padding). A token is
/// shown once, when it is made; the store keeps only its SHA-256, so a copy of the database lets
/// nobody in. 256 random bits make a salt or a slow hash unnecessary: there is nothing to guess.
public enum AccessToken {
    public static let prefix = "dsk_"

    /// A new token from the system's cryptographically secure generator.
    public static func generate() -> String { prefix + randomBase64url() }

    /// 32 bytes of the system's cryptographically secure generator, base64url without padding.
    static func randomBase64url() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Lowercase hex SHA-256 of the token's UTF-8 bytes: what the store keeps and looks up.
    public static func hash(_ token: String) -> String {
        hex(SHA256.hash(data: Data(token.utf8)))
    }

    /// Lowercase hex, two digits a byte.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}

/// A tenant's webhook signing secret: `whsec_` and 32 random bytes in base64url. Every delivery
/// carries `X-Descent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1`
/// per secret in force, so a receiver that holds the secret knows the POST is the server's and
/// fresh. Unlike a token it is stored as is: the server needs it to sign.
public enum WebhookSecret {
    public static let prefix = "whsec_"

    public static func generate() -> String { prefix + AccessToken.randomBase64url() }

    /// The `X-Descent-Signature` value for `body` sent at `timestamp` (unix seconds), signed with each of `secrets`.
    public static func signature(of body: Data, timestamp: Int, secrets: [String]) -> String {
        var signed = Data("\(timestamp).".utf8)
        signed.append(body)
        let signatures = secrets.map { secret in
            let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Data(secret.utf8)))
            return "v1=" + AccessToken.hex(mac)
        }
        return (["t=\(timestamp)"] + signatures).joined(separator: ",")
    }
}
