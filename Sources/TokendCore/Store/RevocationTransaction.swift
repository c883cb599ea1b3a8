import Foundation

/// The primitives of a revocation, and of a refresh token's redemption (which may end in one),
/// inside a store transaction (`TokenStore.withRevocationTransaction`). Valid only until its
/// `body` returns. What to mark and log is `Revoker`'s decision; what to mint, `TokenGranter`'s.
public protocol RevocationTransaction: Sendable {
    /// The record for a token hash, revoked or not, locked against other revocations until the
    /// transaction ends; `nil` when unknown.
    func token(hash: TokenHash) async throws -> TokenRecord?
    /// The record with this jti, locked as `token(hash:)`; `nil` when unknown.
    func token(jti: String) async throws -> TokenRecord?
    /// Sets `revokedAt` of the tokens `match` covers that are not revoked yet, and returns those:
    /// tokens revoked earlier keep their time and are not returned.
    func markRevoked(_ match: TokenMatch, at time: Date) async throws -> [RevokedToken]
    /// Appends `entry` to the log and returns its `seq`, greater than every committed one. Seq
    /// order is commit order: a reader that has seen seq N has seen, or will never see, every
    /// smaller seq (the log reader must not skip a late-committing entry).
    func append(_ entry: NewRevocationEntry) async throws -> Int64
    /// Marks a refresh token spent (`TokenRecord.spentAt`) at `time`, unless it is spent already.
    func markSpent(_ hash: TokenHash, at time: Date) async throws
    /// Inserts tokens of an existing grant (a redemption's new pair), extending the grant's expiry
    /// when they outlive it.
    func insertTokens(_ tokens: [TokenRecord]) async throws
    /// The lifetime of the access tokens the grant's refresh token mints, in seconds (`nil` when
    /// the grant predates it being kept, or is unknown).
    func grantAccessTTL(_ grantID: String) async throws -> Int64?
    /// Appends `event` to the audit trail, committed with the rest of the transaction.
    func record(_ event: AuditEvent) async throws
}
