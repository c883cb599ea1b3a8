import Foundation
import Logging
import PostgresNIO
import TokendCore
import TokendPostgres
import TokendSQLite

/// The store a command works on, with what must run or close around it.
enum OpenedStore {
    case postgres(PostgresStore, PostgresClient)
    case sqlite(SQLiteStore)

    var store: any TokendStore {
        switch self {
        case .postgres(let store, _): return store
        case .sqlite(let store): return store
        }
    }

    static func open(_ options: GlobalOptions, logger: Logger) async throws -> OpenedStore {
        if let url = options.resolvedDatabaseURL {
            let configuration = try DatabaseURL.configuration(url)
            var pgLogger = logger
            pgLogger[metadataKey: "db"] = "\(DatabaseURL.redacted(url))"
            let pool = PostgresPoolObserver(maxConnections: configuration.options.maximumConnections)
            let client = PostgresClient(configuration: configuration, backgroundLogger: pool.backgroundLogger(wrapping: pgLogger))
            return .postgres(PostgresStore(client: client, logger: logger, pool: pool), client)
        }
        return .sqlite(try await SQLiteStore.open(directory: options.resolvedDataDir, logger: logger))
    }

    /// Runs `body` with the store usable (PostgreSQL's pool running), then releases it.
    static func with<T: Sendable>(_ options: GlobalOptions, logger: Logger, _ body: @Sendable @escaping (OpenedStore) async throws -> T) async throws -> T {
        let opened = try await open(options, logger: logger)
        switch opened {
        case .sqlite(let store):
            do {
                let result = try await body(opened)
                try await store.shutdown()
                return result
            } catch {
                try? await store.shutdown()
                throw error
            }
        case .postgres(_, let client):
            do {
                try await DatabaseURL(options.resolvedDatabaseURL ?? "").checkConnection(logger: logger)
            } catch let error as TokendError {
                throw StartupError(error.message)
            }
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    await client.run()
                    return nil
                }
                defer { group.cancelAll() }
                return try await body(opened)
            }
        }
    }
}
