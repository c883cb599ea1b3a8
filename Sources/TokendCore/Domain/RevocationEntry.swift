import Foundation

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

    public init(
        seq: Int64,
        kind: Kind,
        value: String,
        tokenHashes: [TokenHash],
        reason: String,
        revokedCount: Int64,
        createdAt: Date,
        expiresAt: Date? = nil
    ) {
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

    public init(
        kind: RevocationEntry.Kind,
        value: String,
        tokenHashes: [TokenHash],
        reason: String,
        revokedCount: Int64,
        createdAt: Date,
        expiresAt: Date
    ) {
        self.kind = kind
        self.value = value
        self.tokenHashes = tokenHashes
        self.reason = reason
        self.revokedCount = revokedCount
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}
