import Foundation

/// Token records and the revocation log.
public protocol TokenStore: Sendable {
    /// Stores the tokens of one issuance atomically, with the `audit` event that records it (an
    /// operator's issuance; `nil` for the others); durable when this returns.
    func insertTokens(_ tokens: [TokenRecord], audit: AuditEvent?) async throws
    /// The record for a token hash, revoked or not; `nil` when unknown.
    func token(hash: TokenHash) async throws -> TokenRecord?
    /// The records of `hashes` that exist, revoked or not, by hash: one batch, for a caller that
    /// coalesces lookups itself (the HTTP fast path's misses). Unknown hashes are absent.
    func tokens(hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord]
    /// The record with this jti; `nil` when unknown.
    func token(jti: String) async throws -> TokenRecord?
    /// Runs `body` in one transaction and commits it when `body` returns; when `body` throws,
    /// nothing it did is kept. When this returns, the transaction is durable. `Revoker` writes
    /// every revocation through this, so that marking tokens and logging them never come apart.
    func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T
    /// Log entries with `seq > after`, in `seq` order, at most `limit`.
    func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry]
    /// The highest committed `seq`, 0 for an empty log.
    func revocationHead() async throws -> Int64
    /// Deletes tokens that expired before `cutoff` and log entries older than `cutoff` that no
    /// longer cover a live token. Returns how many tokens were deleted.
    func deleteExpired(before cutoff: Date) async throws -> Int
}

extension TokenStore {
    /// One `token(hash:)` per hash, in turn: for stores without a batched read.
    public func tokens(hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord] {
        var records: [TokenHash: TokenRecord] = [:]
        for hash in Set(hashes) {
            if let record = try await token(hash: hash) { records[hash] = record }
        }
        return records
    }
}
