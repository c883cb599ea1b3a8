import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendAPI
import TokendCore
import TokendPostgres
import TokendSQLite

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server (the default command).",
        discussion: """
            With no configuration, serves the embedded store in ./.tokend on 127.0.0.1:8080 (public) \
            and 127.0.0.1:8081 (admin), and writes a generated admin token to ./.tokend/admin-token.
            Examples:
              tokend
              TOKEND_DATABASE_URL=postgres://tokend:secret@db:5432/tokend TOKEND_ADMIN_TOKEN=... tokend serve
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: "Public listener (env TOKEND_HTTP_ADDR, default 127.0.0.1:8080).") var httpAddr: String?
    @Option(help: "Admin listener (env TOKEND_ADMIN_ADDR, default 127.0.0.1:8081).") var adminAddr: String?
    @Option(help: "Bearer secret of the admin API (env TOKEND_ADMIN_TOKEN; generated with the embedded store).") var adminToken: String?
    @Option(help: "iss of issued tokens and metadata (env TOKEND_ISSUER, default http://<http-addr>).") var issuer: String?
    @Option(help: "How long answers may come from memory without a confirmed sync (env TOKEND_MAX_STALENESS, default 5s).") var maxStaleness: String?
    @Option(help: "Token records kept in memory (env TOKEND_CACHE_ENTRIES, default 1000000).") var cacheEntries: String?
    @Option(help: "Apply pending migrations at start-up: auto or off (env TOKEND_MIGRATE, default auto).") var migrate: String?
    @Option(help: "How often expired tokens are deleted (env TOKEND_GC_INTERVAL, default 10m).") var gcInterval: String?

    func validate() throws {
        _ = try ListenAddress(parsing: global.value(httpAddr, "TOKEND_HTTP_ADDR") ?? "127.0.0.1:8080", name: "TOKEND_HTTP_ADDR")
        _ = try ListenAddress(parsing: global.value(adminAddr, "TOKEND_ADMIN_ADDR") ?? "127.0.0.1:8081", name: "TOKEND_ADMIN_ADDR")
        if let s = global.value(maxStaleness, "TOKEND_MAX_STALENESS"), parseDuration(s) == nil {
            throw ValidationError("TOKEND_MAX_STALENESS must be a duration such as 5s")
        }
        if let s = global.value(gcInterval, "TOKEND_GC_INTERVAL"), (parseDuration(s) ?? 0) < 1 {
            throw ValidationError("TOKEND_GC_INTERVAL must be a duration of at least 1s")
        }
        if let s = global.value(cacheEntries, "TOKEND_CACHE_ENTRIES"), (Int(s) ?? -1) < 0 {
            throw ValidationError("TOKEND_CACHE_ENTRIES must be a whole number")
        }
        if let s = global.value(migrate, "TOKEND_MIGRATE"), !["auto", "off"].contains(s) {
            throw ValidationError("TOKEND_MIGRATE must be auto or off")
        }
        if global.resolvedDatabaseURL != nil, global.value(adminToken, "TOKEND_ADMIN_TOKEN") == nil {
            throw ValidationError("TOKEND_ADMIN_TOKEN is required with TOKEND_DATABASE_URL (only the embedded dev store generates one)")
        }
    }

    func run() async throws {
        let logger = global.bootstrapLogging()
        let httpAddress = try ListenAddress(parsing: global.value(httpAddr, "TOKEND_HTTP_ADDR") ?? "127.0.0.1:8080", name: "TOKEND_HTTP_ADDR")
        let adminAddress = try ListenAddress(parsing: global.value(adminAddr, "TOKEND_ADMIN_ADDR") ?? "127.0.0.1:8081", name: "TOKEND_ADMIN_ADDR")
        let issuerURL = global.value(issuer, "TOKEND_ISSUER") ?? "http://\(httpAddress)"
        let gcSeconds = global.value(gcInterval, "TOKEND_GC_INTERVAL").flatMap(parseDuration) ?? 600

        let opened: OpenedStore
        do {
            opened = try await OpenedStore.open(global, logger: logger)
        } catch let error as TokendError {
            throw CleanExit.message("tokend: \(error.message)")
        }
        let generatedTokenPath: String?
        let token: String
        if let configured = global.value(adminToken, "TOKEND_ADMIN_TOKEN") {
            token = configured
            generatedTokenPath = nil
        } else {
            let (value, path) = try DevSecrets.adminToken(dataDir: global.resolvedDataDir)
            token = value
            generatedTokenPath = path
        }

        let services = TokendServices(store: opened.store, issuerURL: issuerURL, adminToken: token, logger: logger)
        var publicApp = Application(
            router: buildPublicRouter(services),
            configuration: .init(address: .hostname(httpAddress.host, port: httpAddress.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? httpAddress.port
                logger.notice("public listener ready", metadata: ["address": "http://\(httpAddress.host):\(port)"])
            },
            logger: logger)
        let adminApp = Application(
            router: buildAdminRouter(services),
            configuration: .init(address: .hostname(adminAddress.host, port: adminAddress.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? adminAddress.port
                logger.notice("admin listener ready", metadata: ["address": "http://\(adminAddress.host):\(port)"])
                if let generatedTokenPath {
                    FirstRun.printBanner(httpAddress: httpAddress, adminPort: port, adminTokenPath: generatedTokenPath)
                }
            },
            logger: logger)

        var services_: [any Service] = []
        if case .postgres(_, let client) = opened {
            services_.append(client)
            if global.value(migrate, "TOKEND_MIGRATE") != "off" {
                let migrator = PostgresMigrator(client: client, logger: logger)
                publicApp.beforeServerStarts {
                    try await migrator.migrate()
                }
            }
        }
        services_.append(ExpiryCollector(store: opened.store, interval: gcSeconds, logger: logger))
        services_.append(publicApp)
        services_.append(adminApp)

        let group = ServiceGroup(
            configuration: .init(
                services: services_.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            if case .sqlite(let store) = opened { try? await store.shutdown() }
            logger.error("tokend stopped", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        if case .sqlite(let store) = opened { try await store.shutdown() }
    }
}

/// Deletes expired tokens periodically (`tokend gc` does the same once).
struct ExpiryCollector: Service {
    let store: any TokendStore
    let interval: Double
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(interval))
                do {
                    let deleted = try await store.deleteExpired(before: Date())
                    if deleted > 0 { logger.info("expired tokens deleted", metadata: ["count": "\(deleted)"]) }
                } catch {
                    logger.warning("expiry clean-up failed; will retry", metadata: ["error_type": "\(String(reflecting: type(of: error)))"])
                }
            }
        }
    }
}

/// Secrets the embedded dev mode generates for itself.
enum DevSecrets {
    /// Reads `dataDir/admin-token`, creating it (mode 0600) with a random secret if absent.
    static func adminToken(dataDir: String) throws -> (String, String) {
        let path = URL(fileURLWithPath: dataDir).appendingPathComponent("admin-token").standardizedFileURL.path
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = existing.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { return (trimmed, path) }
        }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let secret = "tkd_admin_" + Randomness.secret()
        guard FileManager.default.createFile(atPath: path, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CleanExit.message("tokend: cannot write \(path)")
        }
        return (secret, path)
    }
}

enum FirstRun {
    static func printBanner(httpAddress: ListenAddress, adminPort: Int, adminTokenPath: String) {
        let base = "http://\(httpAddress)"
        FileHandle.standardOutput.write(Data("""

            tokend is running with the embedded store (dev mode).
              public API:  \(base)   (RFC 7662 /oauth2/introspect, RFC 7009 /oauth2/revoke, Connect RPC)
              admin API:   http://127.0.0.1:\(adminPort)
              admin token: \(adminTokenPath)   (tokenctl finds it when run from this directory)

            Try next:
              tokenctl clients create resource-server --role introspect
              tokenctl tokens issue --client resource-server --subject alice
              tokenctl tokens introspect <access_token>

            """.utf8))
    }
}
