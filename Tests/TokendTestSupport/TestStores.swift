import Foundation
import Logging
import PostgresNIO
import Synchronization
import TokendCore
import TokendPostgres
import TokendSQLite

/// The stores tests run against.
public enum StoreKind: String, Sendable, CustomStringConvertible {
    case postgres
    case sqlite
    /// PostgreSQL through PgBouncer in transaction pooling mode (`PrivatePgBouncer`), the store
    /// made for it (`pooler=transaction`).
    case pgbouncer

    /// The two engines, which every test of a component over a store runs against.
    public static let allCases: [StoreKind] = [.postgres, .sqlite]
    /// What the store conformance suites (`Tests/TokendStoreTests`) run against: the two engines,
    /// and with `TOKEND_TEST_PGBOUNCER=1` PostgreSQL through a transaction pooler as well. Off in
    /// the default run: each case starts a PgBouncer of its own and the suite then took twice as
    /// long on two cores, starving the rest; `TransactionPoolerTests` and `UpstreamTests` run
    /// through PgBouncer in every run.
    public static let conformanceCases: [StoreKind] =
        ProcessInfo.processInfo.environment["TOKEND_TEST_PGBOUNCER"] == "1" ? allCases + [.pgbouncer] : allCases

    /// The `TokendStore.name` of the store `withStore` makes.
    public var storeName: String { self == .sqlite ? "sqlite" : "postgres" }

    public var description: String { rawValue }
}

public enum TestEnvironment {
    /// The PostgreSQL server `scripts/with-postgres` started, or a skip/failure when there is none:
    /// under CI a missing database is an error, never a silent skip.
    public static func databaseURL() throws -> String {
        if let url = ProcessInfo.processInfo.environment["TOKEND_TEST_DATABASE_URL"], !url.isEmpty { return url }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            throw TestSetupError("TOKEND_TEST_DATABASE_URL is not set: run the tests through scripts/test")
        }
        throw TestSetupError("TOKEND_TEST_DATABASE_URL is not set (run scripts/test, or scripts/with-postgres swift test)")
    }

    public static var logger: Logger {
        var logger = Logger(label: "tokend.test")
        logger.logLevel = ProcessInfo.processInfo.environment["TOKEND_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body` against a fresh, migrated store of `kind`, then throws it away.
public func withStore<T: Sendable>(
    _ kind: StoreKind,
    _ body: @Sendable (any TokendStore) async throws -> T
) async throws -> T {
    switch kind {
    case .sqlite:
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try await SQLiteStore.open(directory: directory, logger: TestEnvironment.logger)
        do {
            let result = try await body(store)
            try await store.shutdown()
            return result
        } catch {
            try? await store.shutdown()
            throw error
        }
    case .postgres:
        return try await withFreshPostgres { client in
            try await body(PostgresStore(client: client, logger: TestEnvironment.logger))
        }
    case .pgbouncer:
        return try await withFreshPostgres(throughPgBouncer: true) { client in
            try await body(PostgresStore(client: client, logger: TestEnvironment.logger, transactionPooler: true))
        }
    }
}

/// Creates a new database on the test server, migrates it, runs `body` with a running client
/// connected to it, and drops it afterwards. `throughPgBouncer`: the client (and the migration)
/// goes through a `PrivatePgBouncer` of its own in transaction pooling mode, stopped afterwards.
public func withFreshPostgres<T: Sendable>(
    migrate: Bool = true,
    throughPgBouncer: Bool = false,
    _ body: @Sendable (PostgresClient) async throws -> T
) async throws -> T {
    try await withFreshPostgres(migrate: migrate, throughPgBouncer: throughPgBouncer) { client, _ in try await body(client) }
}

/// `withFreshPostgres`, and the URL `client` connects with (for a second client of the same database).
public func withFreshPostgres<T: Sendable>(
    migrate: Bool = true,
    throughPgBouncer: Bool,
    _ body: @Sendable (PostgresClient, String) async throws -> T
) async throws -> T {
    let (name, directURL) = try await createDatabase()
    let result: Result<T, any Error>
    do {
        let bouncer: PrivatePgBouncer? = if throughPgBouncer { try await PrivatePgBouncer.startInFrontOfTestServer() } else { nil }
        defer { bouncer?.destroy() }
        let url = bouncer?.url(database: name) ?? directURL
        let client = PostgresClient(configuration: try DatabaseURL.configuration(url), backgroundLogger: TestEnvironment.logger)
        result = await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                if migrate { try await PostgresMigrator(client: client, logger: TestEnvironment.logger).migrate() }
                return .success(try await body(client, url))
            } catch {
                return .failure(error)
            }
        }
    } catch {
        result = .failure(error)
    }
    try await dropDatabase(name)
    return try result.get()
}

/// A new empty database; returns its name and URL.
public func createDatabase() async throws -> (String, String) {
    let name = "tokend_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
    try await withAdminClient(try TestEnvironment.databaseURL()) { client in
        // Identifiers cannot be bound; the name is generated here from [a-z0-9_].
        try await client.query("CREATE DATABASE \(unescaped: name)")
    }
    return (String(name), try databaseURL(String(name)))
}

/// The URL of database `name` on the test server.
public func databaseURL(_ name: String) throws -> String {
    guard var components = URLComponents(string: try TestEnvironment.databaseURL()) else { throw TestSetupError("bad TOKEND_TEST_DATABASE_URL") }
    components.path = "/" + name
    return components.string!
}

public func dropDatabase(_ name: String) async throws {
    try await withAdminClient(try TestEnvironment.databaseURL()) { client in
        try await client.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)")
    }
}

/// How many sessions of `database` on the test server have `application_name` `name`.
public func sessions(of database: String, applicationName name: String) async throws -> Int {
    let count = Mutex(0)
    try await withAdminClient(try TestEnvironment.databaseURL()) { client in
        let rows = try await client.query("SELECT count(*)::int FROM pg_stat_activity WHERE datname = \(database) AND application_name = \(name)")
        for try await value in rows.decode(Int.self) { count.withLock { $0 = value } }
    }
    return count.withLock { $0 }
}

func withAdminClient(_ url: String, _ body: @Sendable (PostgresClient) async throws -> Void) async throws {
    let client = PostgresClient(configuration: try DatabaseURL.configuration(url), backgroundLogger: TestEnvironment.logger)
    let result: Result<Void, any Error> = await withTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        do { return .success(try await body(client)) } catch { return .failure(error) }
    }
    try result.get()
}

/// A clock tests move by hand instead of sleeping.
public final class ManualClock: Sendable {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = Mutex(start)
    }

    public var now: Now { { self.current.withLock { $0 } } }

    public func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}
