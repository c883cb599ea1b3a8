import Logging
import TokendServer

/// Runs a one-shot command's `body` with the store open and usable; a store that cannot be
/// reached ends the command at once with the reason.
func withStoreBackend(
    _ store: StoreConfiguration,
    logger: Logger,
    _ body: @Sendable @escaping (any StoreBackend) async throws -> Void
) async throws {
    let backend: any StoreBackend
    do {
        backend = try await openStoreBackend(store, logger: logger)
        try await backend.checkConnection()
    } catch {
        throw StartupError(error)
    }
    try await backend.withRunning(logger: logger) { try await body(backend) }
}
