import ServiceLifecycle

/// Closes the store backend once everything that uses it has stopped (it is the group's first
/// service, so the last to stop).
struct StoreCloser: Service {
    let backend: any StoreBackend

    func run() async throws {
        try? await gracefulShutdown()
        try await backend.close()
    }
}
