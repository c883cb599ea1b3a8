import Foundation
import Logging
import PostgresNIO
import Testing
import TokendCore
import TokendTestSupport

@testable import TokendPostgres

/// `tokend migrate` against PostgreSQL: status, idempotence, concurrent replicas, resulting schema.
@Suite struct PostgresMigratorTests {
    static var allVersions: [Int] { PostgresMigrations.all.map(\.version).sorted() }

    @Test func statusMigrateAndMigrateAgain() async throws {
        #expect(!PostgresMigrations.all.isEmpty)
        try await withFreshPostgres(migrate: false) { client in
            let migrator = PostgresMigrator(client: client, logger: TestEnvironment.logger)

            let before = try await migrator.status()
            #expect(before.applied.isEmpty)
            #expect(before.pending == PostgresMigrations.all)

            #expect(try await migrator.migrate() == Self.allVersions)
            #expect(try await migrator.migrate() == [])

            let after = try await migrator.status()
            #expect(after.applied == Self.allVersions)
            #expect(after.pending.isEmpty)

            // The ledger holds one row per migration, with its name.
            let rows = try await client.query("SELECT version, name FROM tokend_migrations ORDER BY version", logger: TestEnvironment.logger)
            var ledger: [(Int, String)] = []
            for try await row in rows {
                let (version, name) = try row.decode((Int32, String).self)
                ledger.append((Int(version), name))
            }
            #expect(ledger.map(\.0) == Self.allVersions)
            #expect(ledger.map(\.1) == PostgresMigrations.all.sorted { $0.version < $1.version }.map(\.name))
        }
    }

    @Test func concurrentMigrationsApplyExactlyOnce() async throws {
        let (name, url) = try await createDatabase()
        let result: Result<[[Int]], any Error>
        do {
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        // A replica of its own: its own client, connections and migrator.
                        let client = PostgresClient(configuration: try DatabaseURL.configuration(url), backgroundLogger: TestEnvironment.logger)
                        return try await withThrowingTaskGroup(of: [Int]?.self) { inner in
                            inner.addTask {
                                await client.run()
                                return nil
                            }
                            defer { inner.cancelAll() }
                            return try await PostgresMigrator(client: client, logger: TestEnvironment.logger).migrate()
                        }
                    }
                }
                var all: [[Int]] = []
                for try await versions in group { all.append(versions) }
                return all
            }
            result = .success(applied)
        } catch {
            result = .failure(error)
        }
        // Check the result in the database while it still exists.
        let status: Result<MigrationStatus, any Error>
        do {
            let client = PostgresClient(configuration: try DatabaseURL.configuration(url), backgroundLogger: TestEnvironment.logger)
            status = .success(
                try await withThrowingTaskGroup(of: MigrationStatus?.self) { group in
                    group.addTask {
                        await client.run()
                        return nil
                    }
                    defer { group.cancelAll() }
                    return try await PostgresMigrator(client: client, logger: TestEnvironment.logger).status()
                }
            )
        } catch {
            status = .failure(error)
        }
        try await dropDatabase(name)

        let applied = try result.get()
        #expect(applied.count == 4)
        #expect(applied.filter { !$0.isEmpty } == [Self.allVersions], "exactly one migrator applies: \(applied)")
        #expect(applied.filter(\.isEmpty).count == 3)
        let final = try status.get()
        #expect(final.applied == Self.allVersions)
        #expect(final.pending.isEmpty)
    }

    @Test func schemaHasTheExpectedTablesAndIndexes() async throws {
        try await withFreshPostgres { client in
            let logger = TestEnvironment.logger
            var tables = Set<String>()
            for try await row in try await client.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                logger: logger
            ) {
                tables.insert(try row.decode(String.self))
            }
            #expect(tables == ["clients", "grants", "tokens", "revocations", "signing_keys", "audit_events", "tokend_migrations"])

            var indexes: [String: String] = [:]
            for try await row in try await client.query(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
                logger: logger
            ) {
                let (name, definition) = try row.decode((String, String).self)
                indexes[name] = definition
            }
            let expected = [
                "tokens_grant_id_idx", "tokens_subject_live_idx", "tokens_client_id_live_idx", "tokens_expires_at_idx",
                "grants_expires_at_idx", "revocations_expires_at_idx",
                "clients_pkey", "grants_pkey", "tokens_pkey", "tokens_jti_key", "revocations_pkey", "tokend_migrations_pkey",
                "signing_keys_pkey", "signing_keys_one_current", "audit_events_pkey", "audit_events_at", "audit_events_actor_at",
            ]
            for name in expected { #expect(indexes[name] != nil, "missing index \(name)") }
            #expect(indexes["tokens_jti_key"]?.contains("UNIQUE") == true)
            #expect(indexes["tokens_pkey"]?.contains("(token_hash)") == true)
            #expect(indexes["tokens_subject_live_idx"]?.contains("WHERE (revoked_at IS NULL)") == true)
            #expect(indexes["tokens_client_id_live_idx"]?.contains("WHERE (revoked_at IS NULL)") == true)
            #expect(indexes["signing_keys_one_current"]?.contains("UNIQUE") == true)
            #expect(indexes["audit_events_actor_at"]?.contains("(actor, at)") == true)

            // Column types the stores rely on.
            var columns: [String: String] = [:]
            for try await row in try await client.query(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'tokens'",
                logger: logger
            ) {
                let (name, type) = try row.decode((String, String).self)
                columns[name] = type
            }
            #expect(columns["token_hash"] == "bytea")
            #expect(columns["audiences"] == "ARRAY")
            #expect(columns["extra"] == "jsonb")
            #expect(columns["expires_at"] == "timestamp with time zone")
            #expect(columns["revoked_at"] == "timestamp with time zone")
            #expect(columns["spent_at"] == "timestamp with time zone")
            #expect(columns.count == 18)
        }
    }

    @Test func aFailingMigrationLeavesTheSchemaAsItWas() async throws {
        try await withFreshPostgres(migrate: false) { client in
            let broken =
                PostgresMigrations.all + [
                    Migration(version: 9999, name: "9999_broken", sql: "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
                ]
            let migrator = PostgresMigrator(client: client, logger: TestEnvironment.logger, migrations: broken)
            await #expect(throws: (any Error).self) { try await migrator.migrate() }
            let status = try await migrator.status()
            #expect(status.applied.isEmpty)
            #expect(status.pending.map(\.version) == Self.allVersions + [9999])
            var exists = true
            for try await row in try await client.query("SELECT to_regclass('half_done') IS NOT NULL", logger: TestEnvironment.logger) {
                exists = try row.decode(Bool.self)
            }
            #expect(exists == false)
        }
    }
}
