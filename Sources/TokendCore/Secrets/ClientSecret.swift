import Crypto

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
