import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendCore
import TokendPostgres
import TokendSQLite

/// PostgreSQL: a connection pool, a dedicated LISTEN connection, migrations under an advisory lock.
/// With a read URL (`TOKEND_READ_DATABASE_URL`), a second pool on the hot standby for lookups and
/// the log's tail, and no LISTEN connection (NOTIFY never reaches a standby; the log is polled).
struct PostgresBackend: StoreBackend {
    let url: String
    let client: PostgresClient
    let postgres: PostgresStore
    let observer: PostgresPoolObserver
    let logger: Logger
    /// The standby's pool and what it reads; `nil` without a read URL.
    let standbyClient: PostgresClient?
    let standbyReads: (any StandbyReads)?
    /// `pooler=transaction` on the URL: unnamed statements, and no LISTEN connection.
    let transactionPooler: Bool
    /// The HTTP fast path's reads of cache misses, on two connections of their own; `nil` with a
    /// standby (the fast path leaves misses to the router then).
    let reader: PostgresBatchReader?
    static let readerConnections = 2

    init(url: String, readURL: String? = nil, logger: Logger) throws {
        var configuration = try DatabaseURL.configuration(url)
        if readURL == nil {
            // The fast path's reader holds two connections of its own: the replica's total stays
            // 20 plus the LISTEN session.
            configuration.options.maximumConnections -= PostgresBackend.readerConnections
        }
        var pgLogger = logger
        pgLogger[metadataKey: "db"] = "\(DatabaseURL.redacted(url))"
        self.url = url
        self.logger = logger
        self.observer = PostgresPoolObserver(maxConnections: configuration.options.maximumConnections)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: observer.backgroundLogger(wrapping: pgLogger))
        let parsed = try DatabaseURL(url)
        self.transactionPooler = parsed.transactionPooler
        self.postgres = PostgresStore(client: client, logger: logger, pool: observer, transactionPooler: parsed.transactionPooler)
        if let readURL {
            var standbyLogger = logger
            standbyLogger[metadataKey: "db"] = "\(DatabaseURL.redacted(readURL))"
            let standbyConfiguration: PostgresClient.Configuration
            do {
                standbyConfiguration = try DatabaseURL.configuration(readURL)
            } catch {
                throw ConfigurationError("TOKEND_READ_DATABASE_URL: \(error)")
            }
            let standbyClient = PostgresClient(configuration: standbyConfiguration, backgroundLogger: standbyLogger)
            self.standbyClient = standbyClient
            self.standbyReads = PostgresStandbyReads(
                standby: PostgresStore(
                    client: standbyClient,
                    logger: standbyLogger,
                    transactionPooler: (try? DatabaseURL(readURL).transactionPooler) ?? false
                ),
                primary: client,
                logger: standbyLogger
            )
        } else {
            self.standbyClient = nil
            self.standbyReads = nil
        }
        self.reader =
            readURL == nil
            ? postgres.batchReader(configuration: try parsed.connectionConfiguration(), connections: Self.readerConnections) : nil
    }

    var store: any TokendStore { postgres }
    var pool: (any StorePoolReporting)? { postgres }
    var batchReader: (any TokenBatchReader)? { reader }

    func services(wakeUps: RevocationListener.WakeUps?, logger: Logger) throws -> [any Service] {
        var services: [any Service] = [client]
        // After the pool, so stopped before it, and after the listeners that use it.
        if let reader { services.append(reader) }
        if let standbyClient {
            // Polled instead of LISTEN: signing keys are then re-read every minute (SigningKeyRing).
            services.append(standbyClient)
        } else if let wakeUps, !transactionPooler {
            services.append(RevocationListener(configuration: try DatabaseURL(url).connectionConfiguration(), logger: logger, wakeUps: wakeUps))
        }
        return services
    }

    func migrate() async throws -> [Int] { try await PostgresMigrator(client: client, logger: logger).migrate() }
    func migrationStatus() async throws -> MigrationStatus { try await PostgresMigrator(client: client, logger: logger).status() }
    func checkConnection() async throws { try await DatabaseURL(url).checkConnection(logger: logger) }
    func close() async throws {}
}
