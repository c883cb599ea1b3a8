import Foundation

/// Gives every call of the wrapped store a time limit, so that while the database is unreachable
/// requests answer 503 within the limit instead of waiting for the driver to give up, and the
/// revocation feed retries instead of hanging on a stuck read.
public struct TimeLimitedStore: TokendStore {
    public let base: any TokendStore
    public let seconds: TimeInterval
    /// In-flight, failed and timed-out calls, for `/metrics`.
    public let calls = StoreCallCounters()
    private let clock: any Clock<Duration>

    /// `clock` measures the limit (tests pass one they move by hand).
    public init(_ base: any TokendStore, seconds: TimeInterval, clock: any Clock<Duration> = ContinuousClock()) {
        self.base = base
        self.seconds = seconds
        self.clock = clock
    }

    public var name: String { base.name }

    private func limit<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let clock = clock  // a local, which the compiler opens to call the generic function
        return try await calls.count { try await withTimeLimit(.milliseconds(Int64(seconds * 1000)), clock: clock, operation) }
    }

    public func ping() async throws { try await limit { [base] in try await base.ping() } }
    public func createClient(_ client: ClientRecord, audit: AuditEvent?) async throws {
        try await limit { [base] in try await base.createClient(client, audit: audit) }
    }
    public func client(id: String) async throws -> ClientRecord? { try await limit { [base] in try await base.client(id: id) } }
    public func listClients() async throws -> [ClientRecord] { try await limit { [base] in try await base.listClients() } }
    public func deleteClient(id: String, audit: AuditEvent?) async throws -> Bool {
        try await limit { [base] in try await base.deleteClient(id: id, audit: audit) }
    }
    public func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8], audit: AuditEvent?) async throws -> Bool {
        try await limit { [base] in try await base.updateClientSecret(id: id, salt: salt, hash: hash, audit: audit) }
    }
    public func updateClient(_ client: ClientRecord, audit: AuditEvent?) async throws -> Bool {
        try await limit { [base] in try await base.updateClient(client, audit: audit) }
    }
    public func signingKeys() async throws -> [StoredSigningKey] { try await limit { [base] in try await base.signingKeys() } }
    public func insertFirstSigningKey(_ key: StoredSigningKey) async throws -> Bool {
        try await limit { [base] in try await base.insertFirstSigningKey(key) }
    }
    public func rotateSigningKey(to key: StoredSigningKey, retiring: Date, audit: AuditEvent?) async throws {
        try await limit { [base] in try await base.rotateSigningKey(to: key, retiring: retiring, audit: audit) }
    }
    public func insertTokens(_ tokens: [TokenRecord], audit: AuditEvent?) async throws {
        try await limit { [base] in try await base.insertTokens(tokens, audit: audit) }
    }
    public func token(hash: TokenHash) async throws -> TokenRecord? { try await limit { [base] in try await base.token(hash: hash) } }
    /// The whole batch under one limit.
    public func tokens(hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord] {
        try await limit { [base] in try await base.tokens(hashes: hashes) }
    }
    public func token(jti: String) async throws -> TokenRecord? { try await limit { [base] in try await base.token(jti: jti) } }
    /// The whole transaction under one limit.
    public func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T {
        try await limit { [base] in try await base.withRevocationTransaction(body) }
    }
    public func revocations(after: Int64, limit count: Int) async throws -> [RevocationEntry] {
        try await limit { [base] in try await base.revocations(after: after, limit: count) }
    }
    public func revocationHead() async throws -> Int64 { try await limit { [base] in try await base.revocationHead() } }
    public func auditEvents(since: Date?, actor: String?, after: Int64, limit count: Int) async throws -> [AuditEvent] {
        try await limit { [base] in try await base.auditEvents(since: since, actor: actor, after: after, limit: count) }
    }
    public func deleteExpired(before cutoff: Date) async throws -> Int {
        // Clean-up may legitimately take long on a big table: a wider limit.
        let clock = clock
        return try await withTimeLimit(.milliseconds(Int64(max(seconds, 60) * 1000)), clock: clock) { [base] in
            try await base.deleteExpired(before: cutoff)
        }
    }
}
