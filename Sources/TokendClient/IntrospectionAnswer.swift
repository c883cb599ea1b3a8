import Crypto
import TokendProto

/// An RFC 7662 §2.2 introspection answer, as tokend gave it (`IntrospectionService/Introspect`),
/// and whether it came from `CachingIntrospector`'s cache.
public struct IntrospectionAnswer: Sendable, Equatable {
    public var active: Bool
    public var scope: String
    public var clientID: String
    public var username: String
    public var tokenType: String
    /// Unix seconds; 0 when absent (inactive answers carry nothing else).
    public var expiresAt: Int64
    public var issuedAt: Int64
    public var notBefore: Int64
    public var subject: String
    public var audiences: [String]
    public var issuer: String
    public var jti: String
    public var grantID: String
    /// RFC 7800 `cnf`: `jkt` (RFC 9449) or `x5t#S256` (RFC 8705); empty when the token is not bound.
    public var confirmationJKT: String
    public var confirmationX5TS256: String
    /// String-valued extra claims.
    public var extra: [String: String]
    /// Answered from the cache, without a call to tokend.
    public var fromCache: Bool

    init(_ response: Tokend_V1_IntrospectResponse, fromCache: Bool) {
        active = response.active
        scope = response.scope
        clientID = response.clientID
        username = response.username
        tokenType = response.tokenType
        expiresAt = response.exp
        issuedAt = response.iat
        notBefore = response.nbf
        subject = response.sub
        audiences = response.aud
        issuer = response.iss
        jti = response.jti
        grantID = response.grantID
        confirmationJKT = response.cnf.jkt
        confirmationX5TS256 = response.cnf.x5TS256
        extra = response.ext
        self.fromCache = fromCache
    }
}

/// The SHA-256 of a token (what Watch events carry in `token_hashes`): the cache's key, so that
/// the cache never holds a raw token.
struct TokenDigest: Hashable, Sendable {
    private var w0: UInt64
    private var w1: UInt64
    private var w2: UInt64
    private var w3: UInt64

    init(token: String) {
        let digest = SHA256.hash(data: Array(token.utf8))
        (w0, w1, w2, w3) = digest.withUnsafeBytes { Self.words($0) }
    }

    /// `nil` unless `bytes` holds exactly 32.
    init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        (w0, w1, w2, w3) = Array(bytes).withUnsafeBytes { Self.words($0) }
    }

    private static func words(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        (
            raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        )
    }
}
