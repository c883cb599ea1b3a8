import ArgumentParser
import Foundation
import TokendCore
import TokendPostgres

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending schema migrations (idempotent; safe from several replicas at once).",
        discussion: """
            With TOKEND_DATABASE_URL set, applies migrations/postgres (embedded in the binary) in one \
            transaction under an advisory lock. Without it, migrates the embedded store in TOKEND_DATA_DIR.
            Examples:
              tokend migrate
              tokend migrate --status
            """
    )

    @OptionGroup var global: GlobalOptions
    @Flag(help: "List applied and pending migrations without changing anything.") var status = false

    func run() async throws {
        let logger = global.bootstrapLogging()
        let showStatus = status
        try await OpenedStore.with(global, logger: logger) { opened in
            let migrationStatus: MigrationStatus
            switch opened {
            case .postgres(_, let client):
                let migrator = PostgresMigrator(client: client, logger: logger)
                if !showStatus {
                    let applied = try await migrator.migrate()
                    print(applied.isEmpty ? "nothing to apply" : "applied: \(applied.map(String.init).joined(separator: ", "))")
                }
                migrationStatus = try await migrator.status()
            case .sqlite(let store):
                // Opening the embedded store applies its migrations.
                migrationStatus = try await store.migrationStatus()
                if !showStatus { print("embedded store in \(global.resolvedDataDir) is up to date") }
            }
            if showStatus {
                for version in migrationStatus.applied { print("applied  \(String(format: "%04d", version))") }
                for migration in migrationStatus.pending { print("pending  \(migration.name)") }
            }
        }
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete expired tokens and revocation entries that can no longer matter."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let logger = global.bootstrapLogging()
        try await OpenedStore.with(global, logger: logger) { opened in
            let deleted = try await opened.store.deleteExpired(before: Date())
            print("deleted \(deleted) expired tokens")
        }
    }
}
