import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendCore
import TokendPostgres
import TokendSQLite

/// One kind of store with what runs and closes around it: the composition root asks a backend,
/// never the store's kind.
public protocol StoreBackend: Sendable {
    var store: any TokendStore { get }
    /// The connection pool's figures, for `/metrics`; `nil` for a store without a pool.
    var pool: (any StorePoolReporting)? { get }
    /// The hot standby for lookups and the log's tail (`TOKEND_READ_DATABASE_URL`); `nil`: none.
    var standbyReads: (any StandbyReads)? { get }
    /// Reads batches of token records without a task (the HTTP fast path's cache misses), when the
    /// store can; `nil`: the fast path reads through the replica.
    var batchReader: (any TokenBatchReader)? { get }
    /// Services that must run while the store is in use: PostgreSQL's pool and, with `wakeUps`,
    /// the LISTEN connection that calls them on every committed revocation and key rotation.
    func services(wakeUps: RevocationListener.WakeUps?, logger: Logger) throws -> [any Service]
    /// Applies pending migrations; returns the versions applied.
    func migrate() async throws -> [Int]
    func migrationStatus() async throws -> MigrationStatus
    /// Fails at once with the reason when the store cannot be reached (one-shot commands).
    func checkConnection() async throws
    /// Releases what the store holds once its services are stopped.
    func close() async throws
}

/// Opens the configured store; `readURL` (PostgreSQL only) names a hot standby for reads.
public func openStoreBackend(_ configuration: StoreConfiguration, readURL: String? = nil, logger: Logger) async throws -> any StoreBackend {
    switch configuration {
    case .postgres(let url, _): return try PostgresBackend(url: url, readURL: readURL, logger: logger)
    case .embedded(let dataDir): return EmbeddedBackend(store: try await SQLiteStore.open(directory: dataDir, logger: logger))
    }
}

extension StoreBackend {
    public var standbyReads: (any StandbyReads)? { nil }
    public var batchReader: (any TokenBatchReader)? { nil }

    /// Runs `body` with the store usable (its services running, without wake-ups), then releases it.
    public func withRunning<T: Sendable>(logger: Logger, _ body: @Sendable @escaping () async throws -> T) async throws -> T {
        do {
            let result = try await withThrowingTaskGroup(of: T?.self) { group in
                for service in try services(wakeUps: nil, logger: logger) {
                    group.addTask {
                        try await service.run()
                        return nil
                    }
                }
                defer { group.cancelAll() }
                return try await body()
            }
            try await close()
            return result
        } catch {
            try? await close()
            throw error
        }
    }
}
