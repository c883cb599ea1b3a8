import Foundation

public enum TokenKind: Int, Sendable, Codable {
    case access = 1
    case refresh = 2

    public var prefix: String {
        switch self {
        case .access: return "tkd_at_"
        case .refresh: return "tkd_rt_"
        }
    }
}

/// RFC 7800 `cnf`: the key a token is bound to.
public struct Confirmation: Sendable, Equatable, Codable {
    /// RFC 9449 DPoP JWK thumbprint.
    public var jkt: String?
    /// RFC 8705 certificate thumbprint (`x5t#S256`).
    public var x5tS256: String?

    public init(jkt: String? = nil, x5tS256: String? = nil) {
        self.jkt = jkt
        self.x5tS256 = x5tS256
    }

    public var isEmpty: Bool { (jkt ?? "").isEmpty && (x5tS256 ?? "").isEmpty }
}

/// The stored state of one token, keyed by the hash of the token; the token itself is never kept.
public struct TokenRecord: Sendable, Equatable {
    public var hash: TokenHash
    public var kind: TokenKind
    public var clientID: String
    public var subject: String?
    public var username: String?
    public var scope: String?
    public var audiences: [String]
    public var issuer: String
    public var issuedAt: Date
    public var notBefore: Date?
    public var expiresAt: Date
    public var jti: String
    public var grantID: String
    public var confirmation: Confirmation?
    public var extra: [String: String]
    /// Set once the token is revoked; never cleared.
    public var revokedAt: Date?
    /// Refresh tokens only: set when the token was redeemed at `/oauth2/token` and rotated (RFC 9700
    /// §4.14.2). A spent token is inactive; presenting it again is reuse.
    public var spentAt: Date?

    public init(
        hash: TokenHash,
        kind: TokenKind,
        clientID: String,
        subject: String?,
        username: String?,
        scope: String?,
        audiences: [String],
        issuer: String,
        issuedAt: Date,
        notBefore: Date?,
        expiresAt: Date,
        jti: String,
        grantID: String,
        confirmation: Confirmation?,
        extra: [String: String],
        revokedAt: Date? = nil,
        spentAt: Date? = nil
    ) {
        self.hash = hash
        self.kind = kind
        self.clientID = clientID
        self.subject = subject
        self.username = username
        self.scope = scope
        self.audiences = audiences
        self.issuer = issuer
        self.issuedAt = issuedAt
        self.notBefore = notBefore
        self.expiresAt = expiresAt
        self.jti = jti
        self.grantID = grantID
        self.confirmation = confirmation
        self.extra = extra
        self.revokedAt = revokedAt
        self.spentAt = spentAt
    }

    /// RFC 7662 §2.2 `token_type`: `DPoP` for a DPoP-bound access token, `Bearer` for other access
    /// tokens; refresh tokens have no token type in the RFC 6749 §5.1 sense, so none is reported.
    public var tokenType: String? {
        guard kind == .access else { return nil }
        if let jkt = confirmation?.jkt, !jkt.isEmpty { return "DPoP" }
        return "Bearer"
    }
}
