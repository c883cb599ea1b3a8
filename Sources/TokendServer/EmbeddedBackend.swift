import Foundation
import Logging
import ServiceLifecycle
import TokendCore
import TokendPostgres
import TokendSQLite

/// The embedded single-node store: opening it applies its migrations; closing it closes the file.
struct EmbeddedBackend: StoreBackend {
    let sqlite: SQLiteStore

    init(store: SQLiteStore) { self.sqlite = store }

    var store: any TokendStore { sqlite }
    var pool: (any StorePoolReporting)? { nil }
    func services(wakeUps: RevocationListener.WakeUps?, logger: Logger) throws -> [any Service] { [] }
    func migrate() async throws -> [Int] { [] }
    func migrationStatus() async throws -> MigrationStatus { try await sqlite.migrationStatus() }
    func checkConnection() async throws {}
    func close() async throws { try await sqlite.shutdown() }
}
