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

    /// Runs `body` with a running client on the test database.
    static func withClient(_ body: (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: try DatabaseURL.configuration(try TestEnvironment.databaseURL()), backgroundLogger: TestEnvironment.logger)
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
            // The pool lends a working connection again.
            let answer = try await PostgresStore.onConnection(client) { connection in
                for try await value in try await connection.query("SELECT 2", logger: TestEnvironment.logger).decode(Int.self) { return value }
                return 0
            }
            #expect(answer == 2)
        }
    }
}
