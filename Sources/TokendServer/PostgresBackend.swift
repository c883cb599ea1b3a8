import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendCore
import TokendPostgres
import TokendSQLite

/// PostgreSQL: a connection pool, a dedicated LISTEN connection, migrations under an advisory lock.
struct PostgresBackend: StoreBackend {
    let url: String
    let client: PostgresClient
    let postgres: PostgresStore
    let observer: PostgresPoolObserver
    let logger: Logger

    init(url: String, logger: Logger) throws {
        let configuration = try DatabaseURL.configuration(url)
        var pgLogger = logger
        pgLogger[metadataKey: "db"] = "\(DatabaseURL.redacted(url))"
        self.url = url
        self.logger = logger
        self.observer = PostgresPoolObserver(maxConnections: configuration.options.maximumConnections)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: observer.backgroundLogger(wrapping: pgLogger))
        self.postgres = PostgresStore(client: client, logger: logger, pool: observer)
    }

    var store: any TokendStore { postgres }
    var pool: (any StorePoolReporting)? { postgres }

    func services(wakeUps: RevocationListener.WakeUps?, logger: Logger) throws -> [any Service] {
        guard let wakeUps else { return [client] }
        return [client, RevocationListener(configuration: try DatabaseURL(url).connectionConfiguration(), logger: logger, wakeUps: wakeUps)]
    }

    func migrate() async throws -> [Int] { try await PostgresMigrator(client: client, logger: logger).migrate() }
    func migrationStatus() async throws -> MigrationStatus { try await PostgresMigrator(client: client, logger: logger).status() }
    func checkConnection() async throws { try await DatabaseURL(url).checkConnection(logger: logger) }
    func close() async throws {}
}
