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

/// The primitives of a revocation, inside a store transaction (`TokenStore.withRevocationTransaction`).
/// Valid only until its `body` returns. What to mark and log is `Revoker`'s decision.
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
}

/// A row the store cannot read back: a value no version of tokend writes. Its description names
/// the column, never the value.
public struct StoreCorruption: Error, Sendable, Equatable, CustomStringConvertible {
    public let table: String
    public let column: String

    public init(table: String, column: String) {
        self.table = table
        self.column = column
    }

    public var description: String { "unreadable value in \(table).\(column)" }
}

/// Everything tokend keeps. One conformance suite runs against every implementation.
public protocol TokendStore: ClientStore, TokenStore {
    /// A short name for status output: `postgres` or `sqlite`.
    var name: String { get }
    /// Succeeds when the store can answer queries now.
    func ping() async throws
}
