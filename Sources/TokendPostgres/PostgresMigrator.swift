import Foundation
import Logging
import PostgresNIO
import TokendCore

/// Applies `migrations/postgres/` (embedded at build time) in order.
///
/// Everything happens in one transaction holding a transaction-scoped advisory lock, so several
/// replicas (or a migration Job and replicas) may run it at once: the first applies, the others wait
/// and then find nothing pending. A failing migration leaves the schema as it was.
public struct PostgresMigrator: Sendable {
    /// `pg_advisory_xact_lock` key: "tokend" in ASCII.
    static let lockKey: Int64 = 0x746F_6B65_6E64
    public let migrations: [Migration]
    private let client: PostgresClient
    private let logger: Logger

    public init(client: PostgresClient, logger: Logger, migrations: [Migration]? = nil) {
        self.client = client
        self.logger = logger
        self.migrations = migrations ?? PostgresMigrations.all
    }

    /// Applies what is pending and returns the versions it applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
            try await Self.ensureLedger(connection, logger: logger)
            let applied = try await Self.appliedVersions(connection, logger: logger)
            var done: [Int] = []
            for migration in migrations.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO tokend_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), now())",
                    logger: logger
                )
                logger.info("migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                done.append(migration.version)
            }
            return done
        }
    }

    public func status() async throws -> MigrationStatus {
        let applied: [Int] = try await client.withConnection { connection in
            let exists = try await connection.query("SELECT to_regclass('tokend_migrations') IS NOT NULL", logger: logger)
            var present = false
            for try await row in exists { present = try row.decode(Bool.self) }
            guard present else { return [] }
            return try await Self.appliedVersions(connection, logger: logger).sorted()
        }
        return MigrationStatus(applied: applied, pending: migrations.filter { !applied.contains($0.version) })
    }

    private static func ensureLedger(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS tokend_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)
            """,
            logger: logger
        )
    }

    private static func appliedVersions(_ connection: PostgresConnection, logger: Logger) async throws -> Set<Int> {
        let rows = try await connection.query("SELECT version FROM tokend_migrations", logger: logger)
        var versions = Set<Int>()
        for try await row in rows { versions.insert(Int(try row.decode(Int32.self))) }
        return versions
    }
}
