import Foundation

/// A store call that did not finish within its time limit.
public struct StoreTimeout: Error, CustomStringConvertible {
    public let seconds: TimeInterval
    public var description: String { "the token store did not answer within \(seconds) s" }
}

/// Runs `operation`, cancelling it and throwing `StoreTimeout` after `seconds`.
///
/// Cancellation reaches the wait that matters in an outage: a PostgreSQL pool keeps requests queued
/// for a connection (for up to a minute) and gives them up on cancellation.
public func withTimeLimit<T: Sendable>(_ seconds: TimeInterval, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: TimeLimitOutcome<T>.self) { group in
        group.addTask { .value(try await operation()) }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            return .timedOut
        }
        defer { group.cancelAll() }
        switch try await group.next() {
        case .value(let value)?: return value
        case .timedOut?, nil: throw StoreTimeout(seconds: seconds)
        }
    }
}

enum TimeLimitOutcome<T: Sendable>: Sendable {
    case value(T)
    case timedOut
}

/// Gives every call of the wrapped store a time limit, so that while the database is unreachable
/// requests answer 503 within the limit instead of waiting for the driver to give up, and the
/// revocation feed retries instead of hanging on a stuck read.
public struct TimeLimitedStore: TokendStore {
    public let base: any TokendStore
    public let seconds: TimeInterval
    /// In-flight, failed and timed-out calls, for `/metrics`.
    public let calls = StoreCallCounters()

    public init(_ base: any TokendStore, seconds: TimeInterval) {
        self.base = base
        self.seconds = seconds
    }

    public var name: String { base.name }

    private func limit<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await calls.count { try await withTimeLimit(seconds, operation) }
    }

    public func ping() async throws { try await limit { [base] in try await base.ping() } }
    public func createClient(_ client: ClientRecord) async throws { try await limit { [base] in try await base.createClient(client) } }
    public func client(id: String) async throws -> ClientRecord? { try await limit { [base] in try await base.client(id: id) } }
    public func listClients() async throws -> [ClientRecord] { try await limit { [base] in try await base.listClients() } }
    public func deleteClient(id: String) async throws -> Bool { try await limit { [base] in try await base.deleteClient(id: id) } }
    public func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8]) async throws -> Bool {
        try await limit { [base] in try await base.updateClientSecret(id: id, salt: salt, hash: hash) }
    }
    public func insertTokens(_ tokens: [TokenRecord]) async throws { try await limit { [base] in try await base.insertTokens(tokens) } }
    public func token(hash: TokenHash) async throws -> TokenRecord? { try await limit { [base] in try await base.token(hash: hash) } }
    public func token(jti: String) async throws -> TokenRecord? { try await limit { [base] in try await base.token(jti: jti) } }
    /// The whole transaction under one limit.
    public func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T {
        try await limit { [base] in try await base.withRevocationTransaction(body) }
    }
    public func revocations(after: Int64, limit count: Int) async throws -> [RevocationEntry] {
        try await limit { [base] in try await base.revocations(after: after, limit: count) }
    }
    public func revocationHead() async throws -> Int64 { try await limit { [base] in try await base.revocationHead() } }
    public func deleteExpired(before cutoff: Date) async throws -> Int {
        // Clean-up may legitimately take long on a big table: a wider limit.
        try await withTimeLimit(max(seconds, 60)) { [base] in try await base.deleteExpired(before: cutoff) }
    }
}
