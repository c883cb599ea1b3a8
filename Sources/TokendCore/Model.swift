import Foundation

/// What a registered client may do. Every client may revoke tokens issued to itself.
public enum Role: String, Sendable, Hashable, CaseIterable, Codable {
    /// Resource servers: RFC 7662 introspection.
    case introspect
    /// The authorization server: minting tokens.
    case issue
    /// May revoke any client's tokens (RFC 7009 §2.1 otherwise limits a client to its own).
    case revoke
}

/// A registered OAuth client. The secret exists only as a salted hash.
public struct ClientRecord: Sendable, Equatable {
    public var id: String
    public var roles: Set<Role>
    /// When non-empty, the client sees as active only tokens whose `aud` contains one of these.
    public var audiences: [String]
    public var secretSalt: [UInt8]
    public var secretHash: [UInt8]
    public var createdAt: Date

    public init(id: String, roles: Set<Role>, audiences: [String], secretSalt: [UInt8], secretHash: [UInt8], createdAt: Date) {
        self.id = id
        self.roles = roles
        self.audiences = audiences
        self.secretSalt = secretSalt
        self.secretHash = secretHash
        self.createdAt = createdAt
    }

    /// Roles in a stable order, for storage and display.
    public var sortedRoles: [String] { roles.map(\.rawValue).sorted() }
}

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

    public init(
        hash: TokenHash, kind: TokenKind, clientID: String, subject: String?, username: String?,
        scope: String?, audiences: [String], issuer: String, issuedAt: Date, notBefore: Date?,
        expiresAt: Date, jti: String, grantID: String, confirmation: Confirmation?,
        extra: [String: String], revokedAt: Date? = nil
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
    }

    /// RFC 7662 §2.2 `token_type`: `DPoP` for a DPoP-bound access token, `Bearer` for other access
    /// tokens; refresh tokens have no token type in the RFC 6749 §5.1 sense, so none is reported.
    public var tokenType: String? {
        guard kind == .access else { return nil }
        if let jkt = confirmation?.jkt, !jkt.isEmpty { return "DPoP" }
        return "Bearer"
    }
}

/// Which tokens a revocation covers.
public enum RevocationSelector: Sendable, Equatable {
    /// One token. Revoking a refresh token revokes its whole grant (RFC 7009 §2.1).
    case token(TokenHash)
    /// The token with this `jti`, with the same cascade as `.token`.
    case jti(String)
    /// Every token of this subject issued up to the revocation.
    case subject(String)
    /// Every token issued to this client up to the revocation.
    case client(String)
    /// Every token of this grant.
    case grant(String)

    /// The kind of log entry this selector names (a refresh token's revokes its grant instead).
    public var kind: RevocationEntry.Kind {
        switch self {
        case .token: return .token
        case .jti: return .jti
        case .subject: return .subject
        case .client: return .client
        case .grant: return .grant
        }
    }
}

/// One entry of the append-only revocation log.
public struct RevocationEntry: Sendable, Equatable {
    /// What an entry names. The raw values are stored and sent on the wire (`RevocationEvent.kind`).
    public enum Kind: String, Sendable, CaseIterable {
        case token
        case jti
        case subject
        case client
        case grant
    }

    public var seq: Int64
    public var kind: Kind
    /// The selector value; for `token` and `jti` entries the token's jti (never the token or its hash).
    public var value: String
    /// For `token`/`jti` entries: the hashes of the tokens revoked, for replicas' revocation filters.
    public var tokenHashes: [TokenHash]
    public var reason: String
    public var revokedCount: Int64
    /// When it was committed; for subject and client entries, the cutoff: tokens issued up to it are revoked.
    public var createdAt: Date
    /// After this no token the entry covers can be active.
    public var expiresAt: Date

    public init(seq: Int64, kind: Kind, value: String, tokenHashes: [TokenHash], reason: String, revokedCount: Int64, createdAt: Date, expiresAt: Date? = nil) {
        self.seq = seq
        self.kind = kind
        self.value = value
        self.tokenHashes = tokenHashes
        self.reason = reason
        self.revokedCount = revokedCount
        self.createdAt = createdAt
        self.expiresAt = expiresAt ?? createdAt
    }
}

/// A log entry as a revocation appends it; the store gives it its `seq`.
public struct NewRevocationEntry: Sendable, Equatable {
    public var kind: RevocationEntry.Kind
    public var value: String
    public var tokenHashes: [TokenHash]
    public var reason: String
    public var revokedCount: Int64
    public var createdAt: Date
    public var expiresAt: Date

    public init(kind: RevocationEntry.Kind, value: String, tokenHashes: [TokenHash], reason: String, revokedCount: Int64, createdAt: Date, expiresAt: Date) {
        self.kind = kind
        self.value = value
        self.tokenHashes = tokenHashes
        self.reason = reason
        self.revokedCount = revokedCount
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// The tokens one `RevocationTransaction.markRevoked` call covers: exactly these, with no cascade.
public enum TokenMatch: Sendable, Equatable {
    case hash(TokenHash)
    case subject(String)
    case client(String)
    /// Every token of the grant; the grant itself is marked revoked too.
    case grant(String)
}

/// A token that `markRevoked` has just marked revoked.
public struct RevokedToken: Sendable, Equatable, Hashable {
    public var hash: TokenHash
    public var expiresAt: Date

    public init(hash: TokenHash, expiresAt: Date) {
        self.hash = hash
        self.expiresAt = expiresAt
    }
}

/// What a committed revocation did.
public struct RevocationOutcome: Sendable, Equatable {
    /// How many tokens it revoked (already revoked ones are not counted).
    public var revoked: Int64
    /// Its position in the revocation log; 0 when nothing matched and nothing was logged.
    public var seq: Int64

    public init(revoked: Int64, seq: Int64) {
        self.revoked = revoked
        self.seq = seq
    }
}
