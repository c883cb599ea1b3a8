import ArgumentParser
import Foundation
import TokendCore
import TokendServer

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
        let (showStatus, store) = (status, global.store)
        try await withStoreBackend(store, logger: logger) { backend in
            if !showStatus {
                if case .embedded(let dataDir) = store {
                    // Opening the embedded store applies its migrations.
                    print("embedded store in \(dataDir) is up to date")
                } else {
                    let applied = try await backend.migrate()
                    print(applied.isEmpty ? "nothing to apply" : "applied: \(applied.map(String.init).joined(separator: ", "))")
                }
            } else {
                let migrationStatus = try await backend.migrationStatus()
                for version in migrationStatus.applied { print("applied  \(String(format: "%04d", version))") }
                for migration in migrationStatus.pending { print("pending  \(migration.name)") }
            }
        }
    }
}
