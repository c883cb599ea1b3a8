import Foundation
import PostgresNIO
import Synchronization
import Testing
import TokendCore
import TokendTestSupport

@testable import TokendPostgres

/// A query written to a PostgreSQL connection that has closed is never answered by postgres-nio
/// 1.33.2 (vapor/postgres-nio#487 fixed it and was reverted in #501). `PostgresStore.onConnection`
/// must still end when its caller gives up, so that the lease goes back to the pool and a token
/// lookup gives its `LookupBatcher` slot back. Before it did, a replica of the fault-injection
/// test lost both slots after a reset fault and answered 503 to every lookup for good.
@Suite(.timeLimit(.minutes(10))) struct ClosedConnectionTests {
    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    /// Runs `body` with a running client on the test database, of at most `connections` connections.
    static func withClient(connections: Int? = nil, _ body: (PostgresClient) async throws -> Void) async throws {
        var configuration = try DatabaseURL.configuration(try TestEnvironment.databaseURL())
        if let connections { configuration.options.maximumConnections = connections }
        let client = PostgresClient(configuration: configuration, backgroundLogger: TestEnvironment.logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            try await body(client)
            group.cancelAll()
        }
    }

    /// Closes `connection`, waits until its pipeline is gone, then writes a query to it.
    @Sendable static func queryAfterClosing(_ connection: PostgresConnection, sent: Flag) async throws -> Int {
        try await connection.close().get()
        // The handlers leave the pipeline on the event loop's next turn after the close.
        try await connection.eventLoop.submit {}.get()
        try await connection.eventLoop.submit {}.get()
        sent.set()
        for try await (value) in try await connection.query("SELECT 1", logger: TestEnvironment.logger).decode(Int.self) { return value }
        return 0
    }

    /// The driver's behaviour that the store works around. If this starts failing, postgres-nio
    /// answers such a query now, and the workaround in `onConnection` may go.
    @Test func postgresNIONeverAnswersAQueryOnAClosedConnection() async throws {
        try await Self.withClient { client in
            let sent = Flag()
            let ended = Flag()
            let call = Task {
                defer { ended.set() }
                return try await client.withConnection { try await Self.queryAfterClosing($0, sent: sent) }
            }
            try await poll(until: "the query was written to the closed connection") { sent.isSet }
            // A span to watch, not a wait for a condition: a failed query is answered within
            // milliseconds, even on a busy machine.
            try await Task.sleep(for: .seconds(1))
            #expect(!ended.isSet, "postgres-nio answered a query written to a closed connection")
            call.cancel()  // no effect on the query; the task is left waiting
        }
    }

    @Test func onConnectionEndsWhenItsCallerGivesUpOnSuchAQuery() async throws {
        try await Self.withClient { client in
            let sent = Flag()
            let ended = Flag()
            let call = Task {
                defer { ended.set() }
                return try await PostgresStore.onConnection(client) { try await Self.queryAfterClosing($0, sent: sent) }
            }
            try await poll(until: "the query was written to the closed connection") { sent.isSet }
            call.cancel()
            try await poll(until: "the call ended after its cancellation", within: .seconds(20)) { ended.isSet }
            await #expect(throws: CancellationError.self) { try await call.value }
            // Its body never ends, and is counted as abandoned for good (other tests' abandoned
            // calls only add to the count).
            #expect(AbandonedOperations.store.count >= 1)
            // The pool lends a working connection again.
            let answer = try await PostgresStore.onConnection(client) { connection in
                for try await value in try await connection.query("SELECT 2", logger: TestEnvironment.logger).decode(Int.self) { return value }
                return 0
            }
            #expect(answer == 2)
        }
    }

    /// The pool learns of a closed connection from its `closeFuture`, so a lease returned before
    /// the close has finished makes the closing connection available to the next caller, whose
    /// query is then never answered (or fails). The next call here comes right after a cancelled
    /// one, on a pool of one connection, twenty times.
    @Test func aCancelledCallsConnectionIsNeverLentToTheNextCaller() async throws {
        try await Self.withClient(connections: 1) { client in
            for round in 1...20 {
                let started = Flag()
                let call = Task {
                    try await PostgresStore.onConnection(client) { connection in
                        started.set()
                        for try await _ in try await connection.query("SELECT pg_sleep(60)", logger: TestEnvironment.logger) {}
                        return 0
                    }
                }
                try await poll(until: "round \(round): the call holds the connection") { started.isSet }
                call.cancel()
                await #expect(throws: CancellationError.self) { try await call.value }
                // A guard against the hang, far beyond a query's milliseconds.
                let answer = try await withTimeLimit(.seconds(20), clock: ContinuousClock()) {
                    try await PostgresStore.onConnection(client) { connection in
                        for try await value in try await connection.query("SELECT \(round)", logger: TestEnvironment.logger).decode(Int.self) {
                            return value
                        }
                        return 0
                    }
                }
                #expect(answer == round)
            }
        }
    }

    /// postgres-nio's `withTransaction` writes `ROLLBACK` to a connection that has closed, and
    /// waits forever for its answer: a cancelled transaction's abandoned task never ended.
    /// `PostgresStore.transaction` rolls back only on an open connection.
    @Test func aTransactionOnAClosedConnectionEnds() async throws {
        struct BodyFailed: Error {}
        try await Self.withClient { client in
            let ended = Flag()
            let call = Task {
                defer { ended.set() }
                try await client.withConnection { connection in
                    try await PostgresStore.transaction(on: connection, logger: TestEnvironment.logger) { connection in
                        try await connection.close().get()
                        throw BodyFailed()
                    }
                }
            }
            try await poll(until: "the transaction ended", within: .seconds(20)) { ended.isSet }
            await #expect(throws: BodyFailed.self) { try await call.value }
        }
    }

    /// A transaction commits what its body wrote, and rolls it back when the body throws.
    @Test func transactionsCommitAndRollBack() async throws {
        struct BodyFailed: Error {}
        let table = "closed_connection_\(UInt32.random(in: 0...UInt32.max))"
        try await Self.withClient { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(table) (n int)"), logger: TestEnvironment.logger)
            func insert(_ n: Int, failing: Bool) async throws {
                try await PostgresStore.onConnection(client) { connection in
                    try await PostgresStore.transaction(on: connection, logger: TestEnvironment.logger) { connection in
                        try await connection.query(PostgresQuery(unsafeSQL: "INSERT INTO \(table) VALUES ($1)", binds: Self.binds(n)), logger: TestEnvironment.logger)
                        if failing { throw BodyFailed() }
                    }
                }
            }
            try await insert(1, failing: false)
            await #expect(throws: BodyFailed.self) { try await insert(2, failing: true) }
            var values: [Int] = []
            for try await value in try await client.query(PostgresQuery(unsafeSQL: "SELECT n FROM \(table) ORDER BY n"), logger: TestEnvironment.logger).decode(Int.self) {
                values.append(value)
            }
            try await client.query(PostgresQuery(unsafeSQL: "DROP TABLE \(table)"), logger: TestEnvironment.logger)
            #expect(values == [1])
        }
    }

    static func binds(_ n: Int) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(n)
        return binds
    }
}
