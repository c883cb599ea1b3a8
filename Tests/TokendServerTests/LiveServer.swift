import Foundation
import ServiceLifecycle
import Testing
import TokendCore
import TokendServer
import TokendTestSupport

/// Runs the whole service in-process, as `tokend serve` builds it (`buildServiceGroup`), on real
/// sockets with every listener on an ephemeral port, over a fresh store of `kind` (a new PostgreSQL
/// database, dropped afterwards); `body` gets the server and its listeners' URLs once it is ready,
/// and the group is shut down gracefully after it.
func withLiveServer(
    _ kind: StoreKind,
    settings extra: [String: String] = [:],
    _ body: (TokendServer, (public: String, admin: String, database: String?)) async throws -> Void
) async throws {
    let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-live-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dataDir) }
    var database: (name: String, url: String)?
    if kind == .postgres { database = try await createDatabase() }
    do {
        var settings: [String: String] = [
            "TOKEND_DATA_DIR": dataDir, "TOKEND_HTTP_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_ADDR": "127.0.0.1:0",
            "TOKEND_GRPC_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_TOKEN": "in-process-admin-token", "TOKEND_STORE_TIMEOUT": "30s",
        ]
        if let database { settings["TOKEND_DATABASE_URL"] = database.url }
        settings.merge(extra) { $1 }
        let configuration = try ServeConfiguration { settings[$0] }
        let server = try await buildServiceGroup(configuration: configuration, logger: TestEnvironment.logger, gracefulShutdownSignals: [])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.group.run() }
            defer { group.cancelAll() }
            let urls = try await waitFor("both listeners bound") { server.listening.urls }
            try await waitFor("ready") { try await get(urls.public + "/readyz") == 200 ? true : nil }
            try await body(server, (urls.public, urls.admin, database?.name))
            await server.group.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    } catch {
        if let name = database?.name { try? await dropDatabase(name) }
        throw error
    }
    if let name = database?.name { try await dropDatabase(name) }
}
