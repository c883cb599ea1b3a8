import Crypto
import Foundation

/// SHA-256 of an opaque token: the only form in which a token is stored, looked up or logged.
public struct TokenHash: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a token hash is 32 bytes")
        self.bytes = bytes
    }

    public init?(validating bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// Hashes a raw token. Call this at the edge, as soon as the token is read.
    public init(token: some StringProtocol) {
        self.bytes = Array(SHA256.hash(data: Array(token.utf8)))
    }

    public var hex: String { bytes.hexString }
    /// A short, non-reversible prefix of the hash for log lines.
    public var description: String { String(hex.prefix(12)) }
}

/// Random identifiers and secrets.
public enum Randomness {
    /// `count` bytes from the system CSPRNG.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// 32 random bytes as 43 characters of unpadded base64url.
    public static func secret() -> String { Base64URL.encode(bytes(32)) }

    /// A 128-bit random identifier (jti, grant id), 22 characters of base64url.
    public static func identifier() -> String { Base64URL.encode(bytes(16)) }
}

/// Opaque token syntax: `tkd_at_` / `tkd_rt_` + 43 characters of base64url (32 random bytes).
public enum OpaqueToken {
    public static let randomLength = 43
    /// RFC 7662 answers `active:false` for anything longer without looking it up.
    public static let maximumLength = 4096

    public static func generate(_ kind: TokenKind) -> String { kind.prefix + Randomness.secret() }

    /// Whether `token` could be a token tokend issued. A malformed token is inactive without a lookup.
    public static func isWellFormed(_ token: some StringProtocol) -> Bool {
        let utf8 = token.utf8
        guard utf8.count == 7 + randomLength else { return false }
        guard token.hasPrefix(TokenKind.access.prefix) || token.hasPrefix(TokenKind.refresh.prefix) else { return false }
        return utf8.dropFirst(7).allSatisfy(Base64URL.isAlphabet)
    }
}

/// Client secrets: generated, shown once, kept as a salted HMAC-SHA-256.
///
/// Secrets are 256-bit random values made by tokend, never chosen by people, so a slow password KDF
/// would add nothing but latency: nobody can guess a 256-bit secret, fast hash or not. The salt
/// keeps equal secrets (there are none in practice) from sharing a hash, and the comparison is
/// constant-time.
public enum ClientSecret {
    public struct Hashed: Sendable, Equatable {
        public var salt: [UInt8]
        public var hash: [UInt8]
    }

    public static func generate() -> String { Randomness.secret() }

    public static func hash(_ secret: String, salt: [UInt8] = Randomness.bytes(16)) -> Hashed {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(secret.utf8), using: SymmetricKey(data: salt))
        return Hashed(salt: salt, hash: Array(mac))
    }

    public static func verify(_ secret: String, salt: [UInt8], hash: [UInt8]) -> Bool {
        constantTimeEqual(self.hash(secret, salt: salt).hash, hash)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}

/// Compares two strings in constant time, also when their lengths differ (hashes first).
public func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    constantTimeEqual(Array(SHA256.hash(data: Array(a.utf8))), Array(SHA256.hash(data: Array(b.utf8))))
}

/// RFC 4648 §5 base64url without padding.
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func isAlphabet(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
    }
}

extension Sequence where Element == UInt8 {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension TokenHash {
    /// Parses 64 hex digits.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = Self.nibble(utf8[i]), let lo = Self.nibble(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.bytes = bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}
