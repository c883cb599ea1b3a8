import Crypto
import Foundation

/// SHA-256 of an opaque token: the only form in which a token is stored, looked up or logged.
///
/// The 32 bytes are kept inline as four words (in memory order, i.e. the digest's byte order), so
/// a hash costs no allocation, hashes and compares as four integers and takes 32 bytes in a
/// dictionary key: hashing a token, caching a record and loading the revocation log all make many.
public struct TokenHash: Sendable, Hashable, CustomStringConvertible {
    private var w0: UInt64
    private var w1: UInt64
    private var w2: UInt64
    private var w3: UInt64

    /// The 32 bytes, in order (allocates an array: for SQL parameters and such, not hot paths).
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a token hash is 32 bytes")
        self.init(unchecked: bytes)
    }

    public init?(validating bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.init(unchecked: bytes)
    }

    private init(unchecked bytes: [UInt8]) {
        (w0, w1, w2, w3) = bytes.withUnsafeBytes { Self.words($0) }
    }

    /// The hash whose 32 bytes are `raw` (which must hold exactly 32).
    public init?(rawBytes raw: UnsafeRawBufferPointer) {
        guard raw.count == 32 else { return nil }
        (w0, w1, w2, w3) = Self.words(raw)
    }

    @inline(__always)
    private static func words(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
         raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// Hashes a raw token. Call this at the edge, as soon as the token is read.
    public init(token: some StringProtocol) {
        var string = String(token)
        self = string.withUTF8 { Self(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// Hashes a raw token given as its UTF-8 bytes.
    public init(utf8 token: UnsafeRawBufferPointer) {
        var hasher = SHA256()
        hasher.update(bufferPointer: token)
        let digest = hasher.finalize()
        (w0, w1, w2, w3) = digest.withUnsafeBytes { Self.words($0) }
    }

    /// The bytes are SHA-256 output, uniform already: one word is as good a hash-table key as
    /// four (the table's `Hasher` is seeded per process regardless), at a quarter of the
    /// hashing. Equality still compares all 32 bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(w0)
    }

    public static func == (a: TokenHash, b: TokenHash) -> Bool {
        (a.w0 ^ b.w0) | (a.w1 ^ b.w1) | (a.w2 ^ b.w2) | (a.w3 ^ b.w3) == 0
    }

    /// Calls `body` with the 32 bytes, without copying them to the heap.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try Swift.withUnsafeBytes(of: &copy) { try body($0) }
    }

    /// Bytes 0..<8 and 8..<16 as little-endian integers (what the Bloom filter's positions use).
    var firstWordLE: UInt64 { UInt64(littleEndian: w0) }
    var secondWordLE: UInt64 { UInt64(littleEndian: w1) }

    public var hex: String { withUnsafeBytes { $0.hexString } }
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

    /// `verify` for one stored (salt, hash), with the HMAC key schedule computed once: a
    /// presented secret then costs one HMAC over the secret (two SHA-256 blocks) and a
    /// constant-time comparison. Exactly the check `verify` makes, for callers that keep the
    /// verifier with a cached client record.
    ///
    /// `@unchecked Sendable`: `HMAC<SHA256>` is a copy-on-write value (its digest contexts are
    /// copied before any update of a shared one) that swift-crypto does not mark `Sendable`; the
    /// stored instance is never mutated, each check works on its own copy.
    public struct Verifier: @unchecked Sendable {
        private let keyed: HMAC<SHA256>
        private let expected: [UInt8]

        public init(salt: [UInt8], hash: [UInt8]) {
            keyed = HMAC<SHA256>(key: SymmetricKey(data: salt))
            expected = hash
        }

        public func matches(_ secret: String) -> Bool {
            var mac = keyed
            var secret = secret
            secret.withUTF8 { mac.update(data: UnsafeRawBufferPointer($0)) }
            let code = mac.finalize()
            return code.withUnsafeBytes { computed in
                expected.withUnsafeBytes { constantTimeEqual(computed, $0) }
            }
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}

/// Compares two byte buffers in time that depends only on their lengths.
public func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in 0..<a.count { difference |= a[i] ^ b[i] }
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
        var hex = hex
        guard let parsed = hex.withUTF8({ Self(hexUTF8: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    /// Parses 64 hex digits given as ASCII bytes.
    public init?(hexUTF8 utf8: UnsafeRawBufferPointer) {
        guard utf8.count == 64 else { return nil }
        var raw: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let ok = Swift.withUnsafeMutableBytes(of: &raw) { out -> Bool in
            var bad: UInt8 = 0
            for i in 0..<32 {
                let hi = Self.nibble(utf8[2 * i]), lo = Self.nibble(utf8[2 * i + 1])
                bad |= (hi | lo) & 0xF0
                out[i] = hi << 4 | (lo & 0x0F)
            }
            return bad == 0
        }
        guard ok else { return nil }
        (w0, w1, w2, w3) = raw
    }

    /// The value of a hex digit, or 0xFF.
    @inline(__always)
    private static func nibble(_ c: UInt8) -> UInt8 {
        switch c {
        case 0x30...0x39: return c &- 0x30
        case 0x61...0x66: return c &- 0x61 &+ 10
        case 0x41...0x46: return c &- 0x41 &+ 10
        default: return 0xFF
        }
    }
}
