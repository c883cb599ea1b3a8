import Foundation

/// Registered clients. Implementations throw `TokendError.alreadyExists` on a duplicate id and
/// any other error when the store cannot answer.
public protocol ClientStore: Sendable {
    func createClient(_ client: ClientRecord) async throws
    /// `nil` when no such client exists.
    func client(id: String) async throws -> ClientRecord?
    func listClients() async throws -> [ClientRecord]
    /// Deletes the client; its tokens stay as they are. `false` when no such client exists.
    func deleteClient(id: String) async throws -> Bool
    /// Replaces the secret hash. `false` when no such client exists.
    func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8]) async throws -> Bool
}

/// Token records and the revocation log.
public protocol TokenStore: Sendable {
    /// Stores the tokens of one issuance atomically; durable when this returns.
    func insertTokens(_ tokens: [TokenRecord]) async throws
    /// The record for a token hash, revoked or not; `nil` when unknown.
    func token(hash: TokenHash) async throws -> TokenRecord?
    /// The record with this jti; `nil` when unknown.
    func token(jti: String) async throws -> TokenRecord?
    /// Marks the selected tokens revoked and appends one log entry, in one transaction: when this
    /// returns, the revocation is committed. Revoking a refresh token (by hash or jti) revokes its
    /// grant. When no token is affected by a `.token`/`.jti` selector, nothing is logged.
    func revoke(_ selector: RevocationSelector, reason: String, at: Date) async throws -> RevocationOutcome
    /// Log entries with `seq > after`, in `seq` order, at most `limit`.
    func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry]
    /// The highest committed `seq`, 0 for an empty log.
    func revocationHead() async throws -> Int64
    /// Deletes tokens that expired before `cutoff` and log entries older than `cutoff` that no
    /// longer cover a live token. Returns how many tokens were deleted.
    func deleteExpired(before cutoff: Date) async throws -> Int
}

/// Everything tokend keeps. One conformance suite runs against every implementation.
public protocol TokendStore: ClientStore, TokenStore {
    /// A short name for status output: `postgres` or `sqlite`.
    var name: String { get }
    /// Succeeds when the store can answer queries now.
    func ping() async throws
}
