import Foundation
import PostgresNIO
import TokendCore
import TokendPostgres
import TokendSQLite

// Faults of the real stores, for the tests of how tokend answers them: a store whose database has
// gone away (`withStore(_:takeDown:)`), and tables locked on the test server by a session of the
// test's own (`DatabaseProbe.withTableLock`).

/// `withStore`, and `takeDown`, which closes the store's connection for good, as when its
/// database has gone away: every later call fails at once with the driver's own error (SQLite: its
/// one connection is closed; PostgreSQL: the pool of the store's own client is shut down).
public func withStore<T: Sendable>(
    _ kind: StoreKind,
    takeDown body: @Sendable (any TokendStore, _ takeDown: @escaping @Sendable () async throws -> Void) async throws -> T
) async throws -> T {
    switch kind {
    case .sqlite:
        return try await withStore(.sqlite) { store in
            // Closing it again afterwards, as `withStore` does, is harmless.
            try await body(store) { try await (store as? SQLiteStore)?.shutdown() }
        }
    case .postgres, .pgbouncer:
        return try await withFreshPostgres(throughPgBouncer: kind == .pgbouncer) { _, url in
            // A pool of its own beside withFreshPostgres's, so kept small: every suite runs at once,
            // and twice the connections per test came near the test server's max_connections.
            var configuration = try DatabaseURL.configuration(url)
            configuration.options.maximumConnections = 4
            let client = PostgresClient(configuration: configuration, backgroundLogger: TestEnvironment.logger)
            let store = PostgresStore(client: client, logger: TestEnvironment.logger, transactionPooler: kind == .pgbouncer)
            // The client runs in a child task of this scope. Taking the store down cancels its run
            // (the pool closes, and every later call fails at once) and waits until it has returned.
            let (stop, stopping) = AsyncStream.makeStream(of: Void.self)
            let (ended, ending) = AsyncStream.makeStream(of: Void.self)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    await withTaskGroup(of: Void.self) { running in
                        running.addTask { await client.run() }
                        for await _ in stop { break }
                        running.cancelAll()
                    }
                    ending.finish()
                }
                let result: Result<T, any Error>
                do {
                    result = .success(
                        try await body(store) {
                            stopping.finish()
                            for await _ in ended {}
                        }
                    )
                } catch {
                    result = .failure(error)
                }
                stopping.finish()
                try await group.waitForAll()
                return try result.get()
            }
        }
    }
}

extension DatabaseProbe {
    /// A lock held on tables of a database of the test server by a session of its own.
    public final class TableLock: Sendable {
        let client: PostgresClient
        let tables: [String]
        private let releasing: AsyncStream<Void>.Continuation

        init(client: PostgresClient, tables: [String], releasing: AsyncStream<Void>.Continuation) {
            self.client = client
            self.tables = tables
            self.releasing = releasing
        }

        /// Lock requests on the locked tables that wait for the lock now: the statements it holds up.
        public func waiting() async throws -> Int {
            let rows = try await client.query(
                """
                SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                WHERE NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND c.relname = ANY(\(tables))
                """
            )
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            return count
        }

        /// Ends the lock's transaction (also done when `withTableLock` returns).
        public func release() {
            releasing.yield()
            releasing.finish()
        }
    }

    /// Runs `body` while a session of its own holds `LOCK TABLE tables IN mode MODE` on `database`
    /// (`ACCESS EXCLUSIVE`: reads and writes of them wait; `EXCLUSIVE`: writes wait), until
    /// `body` returns or calls `release()`.
    public static func withTableLock<T: Sendable>(
        _ mode: String,
        on tables: [String],
        in database: String,
        _ body: (TableLock) async throws -> T
    ) async throws -> T {
        guard (tables + [mode]).allSatisfy({ $0.allSatisfy { $0.isLetter || $0 == "_" || $0 == " " } }) else {
            throw TestSetupError("withTableLock: bad table name or mode")
        }
        let client = PostgresClient(configuration: try DatabaseURL.configuration(try databaseURL(database)), backgroundLogger: TestEnvironment.logger)
        let (released, releasing) = AsyncStream.makeStream(of: Void.self)
        let (locked, lockedContinuation) = AsyncThrowingStream.makeStream(of: Void.self)
        let lock = TableLock(client: client, tables: tables, releasing: releasing)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask {
                do {
                    try await client.withConnection { connection in
                        let logger = TestEnvironment.logger
                        try await connection.query("BEGIN", logger: logger)
                        // Names and mode cannot be bound; they were checked above.
                        let names = tables.joined(separator: ", ")
                        try await connection.query("LOCK TABLE \(unescaped: names) IN \(unescaped: mode) MODE", logger: logger)
                        lockedContinuation.yield()
                        for await _ in released { break }
                        try await connection.query("ROLLBACK", logger: logger)
                    }
                    lockedContinuation.finish()
                } catch {
                    lockedContinuation.finish(throwing: error)
                }
            }
            defer { group.cancelAll() }
            for try await _ in locked { break }
            let result: Result<T, any Error>
            do { result = .success(try await body(lock)) } catch { result = .failure(error) }
            lock.release()
            try await group.next()  // the lock's session, after its ROLLBACK (the client runs until cancelled)
            return try result.get()
        }
    }
}
