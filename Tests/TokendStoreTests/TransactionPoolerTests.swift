import Foundation
import PostgresNIO
import Testing
import TokendCore
import TokendTestSupport

@testable import TokendPostgres

/// PostgreSQL through PgBouncer 1.18 in transaction pooling mode (`pooler=transaction`, issue 13):
/// why named prepared statements must go there, and what the store does instead. The whole store
/// contract runs through PgBouncer too (`StoreKind.pgbouncer` in the conformance suites).
@Suite struct TransactionPoolerTests {
    @Test func poolerOptionIsParsedAndAnythingElseIsAnErrorNamingTheAllowedValues() throws {
        #expect(try DatabaseURL("postgres://u@h/db?pooler=transaction").transactionPooler)
        #expect(try DatabaseURL("postgres://u@h/db?sslmode=require&pooler=transaction").transactionPooler)
        #expect(try !DatabaseURL("postgres://u@h/db?pooler=session").transactionPooler)
        #expect(try !DatabaseURL("postgres://u@h/db").transactionPooler)
        #expect(try !DatabaseURL("postgres://u@h/db?sslmode=disable").transactionPooler)
        for bad in ["statement", "", "Transaction"] {
            do {
                _ = try DatabaseURL("postgres://u@h/db?pooler=\(bad)")
                Issue.record("pooler=\(bad) was accepted")
            } catch let error as TokendError {
                #expect(error.code == .invalidRequest)
                #expect("\(error)".contains("transaction, session"), "\(error)")
            }
        }
        #expect(throws: TokendError.self) { try DatabaseURL("postgres://u@h/db?pooler") }
    }

    /// Two transactions open at once, so that PgBouncer holds (at least) two server connections
    /// for the database; once both commit, both are idle and, oldest first
    /// (`server_round_robin`), consecutive transactions of one client alternate between them.
    static func openTwoServerConnections(_ client: PostgresClient) async throws {
        let (first, firstBegan) = AsyncStream<Void>.makeStream()
        let (second, secondBegan) = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (began, other) in [(firstBegan, second), (secondBegan, first)] {
                group.addTask {
                    try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                        try await connection.query("SELECT 1", logger: TestEnvironment.logger)
                        began.yield()
                        began.finish()
                        for await _ in other { break }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// postgres-nio prepares a named statement in one round trip (Parse, Describe, Sync) and runs
    /// it in the next (Bind, Execute, Sync). PgBouncer 1.18 in transaction mode may give each its
    /// own server connection, and then the second finds no such statement (SQLSTATE 26000). So
    /// the store made without the flag fails through the pooler, and the one made with it (the
    /// same SQL as an unnamed statement) does not.
    @Test func namedPreparedStatementsFailThroughATransactionPoolerAndTheFlaggedStoreDoesNot() async throws {
        try await withFreshPostgres(throughPgBouncer: true) { client in
            let flagged = PostgresStore(client: client, logger: TestEnvironment.logger, transactionPooler: true)
            let grant = Randomness.identifier()
            let tokens = (0..<20).map { _ in mint(grant: grant) }
            try await flagged.insertTokens(tokens.map(\.record))
            try await Self.openTwoServerConnections(client)

            let unflagged = PostgresStore(client: client, logger: TestEnvironment.logger)
            var failures: [String] = []
            for minted in tokens {
                do {
                    _ = try await unflagged.token(hash: minted.hash)
                } catch let error as PSQLError {
                    failures.append(error.serverInfo?[.sqlState] ?? "\(error.code)")
                }
            }
            #expect(failures.contains("26000"), "lookups through the pooler with a named statement failed with \(failures)")

            try await Self.openTwoServerConnections(client)
            for minted in tokens {
                #expect(try await flagged.token(hash: minted.hash) == minted.record)
            }
            #expect(try await flagged.token(hash: TokenHash(token: "tkd_at_unknown")) == nil)
        }
    }

    /// The batched path (`token_hash = ANY($1)` with the hashes bound as one array) through the
    /// pooler: 400 lookups at once, two batches in flight at a time, every answer right.
    @Test func concurrentLookupsThroughTheTransactionPoolerAreBatchedAndAnswerRight() async throws {
        try await withFreshPostgres(throughPgBouncer: true) { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger, maxConcurrentLookups: 2, transactionPooler: true)
            let grants = (0..<3).map { _ in Randomness.identifier() }
            let tokens = (0..<300).map { i in mint(grant: grants[i / 100]) }
            for batch in stride(from: 0, to: tokens.count, by: 100) {
                try await store.insertTokens(tokens[batch..<batch + 100].map(\.record))
            }
            let unknown = (0..<100).map { _ in mint() }
            let asked = tokens.map { ($0.hash, Optional($0.record)) } + unknown.map { ($0.hash, TokenRecord?.none) }
            let wrong = try await withThrowingTaskGroup(of: Bool.self) { group in
                for (hash, expected) in asked.shuffled() {
                    group.addTask { try await store.token(hash: hash) != expected }
                }
                var wrong = 0
                for try await isWrong in group where isWrong { wrong += 1 }
                return wrong
            }
            #expect(wrong == 0)
            let figures = store.poolFigures
            #expect(figures.batchedLookups == Int64(asked.count))
            #expect(figures.lookupBatches < figures.batchedLookups, "no batch formed: \(figures)")
        }
    }

    /// `PostgresMigrator` takes a transaction-scoped advisory lock inside its one transaction,
    /// which a transaction pooler keeps on one server connection: concurrent runs through
    /// PgBouncer apply each migration exactly once.
    @Test func concurrentMigrationsThroughTheTransactionPoolerApplyExactlyOnce() async throws {
        try await withFreshPostgres(migrate: false, throughPgBouncer: true) { client in
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask { try await PostgresMigrator(client: client, logger: TestEnvironment.logger).migrate() }
                }
                var all: [[Int]] = []
                for try await versions in group { all.append(versions) }
                return all
            }
            let everything = PostgresMigrations.all.map(\.version).sorted()
            #expect(applied.filter { !$0.isEmpty } == [everything])
            let status = try await PostgresMigrator(client: client, logger: TestEnvironment.logger).status()
            #expect(status.applied == everything)
            #expect(status.pending.isEmpty)
        }
    }
}
