import ArgumentParser
import Foundation
import Synchronization
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendAPI
import TokendCore
import TokendPostgres
import TokendSQLite
import UnixSignals

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
    @Option(help: "iss of issued tokens and metadata (env TOKEND_ISSUER, default http(s)://<http-addr>).") var issuer: String?
    @Option(help: "How long answers may come from memory without a confirmed sync (env TOKEND_MAX_STALENESS, default 5s).") var maxStaleness: String?
    @Option(help: "Token records kept in memory (env TOKEND_CACHE_ENTRIES, default 1000000).") var cacheEntries: String?
    @Option(help: "Apply pending migrations at start-up: auto or off (env TOKEND_MIGRATE, default auto).") var migrate: String?
    @Option(help: "How often expired tokens are deleted (env TOKEND_GC_INTERVAL, default 10m).") var gcInterval: String?
    @Option(help: "After SIGTERM, keep serving this long with /readyz at 503 before closing the listeners (env TOKEND_SHUTDOWN_DELAY, default 0s).") var shutdownDelay: String?
    @Option(help: "Longest wait for in-flight requests during shutdown (env TOKEND_DRAIN_PERIOD, default 30s).") var drainPeriod: String?
    @Option(help: "Time limit of each store call; past it the request answers 503 (env TOKEND_STORE_TIMEOUT, default 2s).") var storeTimeout: String?
    @Option(help: "PEM certificate chain: serve both listeners over TLS (env TOKEND_TLS_CERT_FILE; reloaded on SIGHUP or change).") var tlsCertFile: String?
    @Option(help: "PEM private key of --tls-cert-file (env TOKEND_TLS_KEY_FILE).") var tlsKeyFile: String?
    @Option(help: "How often the TLS files are checked for changes; 0 = on SIGHUP only (env TOKEND_TLS_RELOAD_INTERVAL, default 2s).") var tlsReloadInterval: String?

    func validate() throws {
        _ = try ListenAddress(parsing: global.value(httpAddr, "TOKEND_HTTP_ADDR") ?? "127.0.0.1:8080", name: "TOKEND_HTTP_ADDR")
        _ = try ListenAddress(parsing: global.value(adminAddr, "TOKEND_ADMIN_ADDR") ?? "127.0.0.1:8081", name: "TOKEND_ADMIN_ADDR")
        if let s = global.value(maxStaleness, "TOKEND_MAX_STALENESS"), parseDuration(s) == nil {
            throw ValidationError("TOKEND_MAX_STALENESS must be a duration such as 5s")
        }
        if let s = global.value(gcInterval, "TOKEND_GC_INTERVAL"), (parseDuration(s) ?? 0) < 1 {
            throw ValidationError("TOKEND_GC_INTERVAL must be a duration of at least 1s")
        }
        if let s = global.value(storeTimeout, "TOKEND_STORE_TIMEOUT"), (parseDuration(s) ?? 0) <= 0 {
            throw ValidationError("TOKEND_STORE_TIMEOUT must be a positive duration such as 3s")
        }
        for (value, name) in [(shutdownDelay, "TOKEND_SHUTDOWN_DELAY"), (drainPeriod, "TOKEND_DRAIN_PERIOD")] {
            if let s = global.value(value, name), parseDuration(s) == nil {
                throw ValidationError("\(name) must be a duration such as 5s")
            }
        }
        if let s = global.value(cacheEntries, "TOKEND_CACHE_ENTRIES"), (Int(s) ?? -1) < 0 {
            throw ValidationError("TOKEND_CACHE_ENTRIES must be a whole number")
        }
        if let s = global.value(migrate, "TOKEND_MIGRATE"), !["auto", "off"].contains(s) {
            throw ValidationError("TOKEND_MIGRATE must be auto or off")
        }
        if (global.value(tlsCertFile, "TOKEND_TLS_CERT_FILE") == nil) != (global.value(tlsKeyFile, "TOKEND_TLS_KEY_FILE") == nil) {
            throw ValidationError("TOKEND_TLS_CERT_FILE and TOKEND_TLS_KEY_FILE go together: set both or neither")
        }
        if let s = global.value(tlsReloadInterval, "TOKEND_TLS_RELOAD_INTERVAL"), parseDuration(s) == nil {
            throw ValidationError("TOKEND_TLS_RELOAD_INTERVAL must be a duration such as 2s (0 = on SIGHUP only)")
        }
        if global.resolvedDatabaseURL != nil, global.value(adminToken, "TOKEND_ADMIN_TOKEN") == nil {
            throw ValidationError("TOKEND_ADMIN_TOKEN is required with TOKEND_DATABASE_URL (only the embedded dev store generates one)")
        }
    }

    func run() async throws {
        let logger = global.bootstrapLogging()
        let httpAddress = try ListenAddress(parsing: global.value(httpAddr, "TOKEND_HTTP_ADDR") ?? "127.0.0.1:8080", name: "TOKEND_HTTP_ADDR")
        let adminAddress = try ListenAddress(parsing: global.value(adminAddr, "TOKEND_ADMIN_ADDR") ?? "127.0.0.1:8081", name: "TOKEND_ADMIN_ADDR")
        let tls: TLSCertificateSource?
        if let certificate = global.value(tlsCertFile, "TOKEND_TLS_CERT_FILE"), let key = global.value(tlsKeyFile, "TOKEND_TLS_KEY_FILE") {
            do {
                tls = try TLSCertificateSource(certificatePath: certificate, keyPath: key)
            } catch {
                throw StartupError("\(error)")
            }
            logger.notice("TLS on both listeners", metadata: ["certificate": "\(tls!.summary)"])
        } else {
            tls = nil
        }
        let scheme = tls == nil ? "http" : "https"
        let configuredIssuer = global.value(issuer, "TOKEND_ISSUER")
        let issuerURL = configuredIssuer ?? "\(scheme)://\(httpAddress)"
        let gcSeconds = global.value(gcInterval, "TOKEND_GC_INTERVAL").flatMap(parseDuration) ?? 600

        let opened: OpenedStore
        do {
            opened = try await OpenedStore.open(global, logger: logger)
        } catch let error as TokendError {
            throw StartupError(error.message)
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

        let maxStalenessSeconds = global.value(maxStaleness, "TOKEND_MAX_STALENESS").flatMap(parseDuration) ?? 5
        let cacheCapacity = global.value(cacheEntries, "TOKEND_CACHE_ENTRIES").flatMap { Int($0) } ?? 1_000_000
        let store = TimeLimitedStore(opened.store, seconds: global.value(storeTimeout, "TOKEND_STORE_TIMEOUT").flatMap(parseDuration) ?? 2)
        let view = RevocationView()
        let memory = ReplicaMemory(cache: TokenCache(capacity: cacheCapacity), view: view, maxStaleness: maxStalenessSeconds)
        let pollInterval = Duration.milliseconds(Int(min(1000, max(50, maxStalenessSeconds * 1000 / 3))))
        let feed = RevocationFeed(store: store, view: view, pollInterval: pollInterval, logger: logger)
        let services = TokendServices(
            store: store, issuerURL: issuerURL, adminToken: token, logger: logger,
            memory: cacheCapacity > 0 ? memory : nil, feed: feed)
        let readiness = Mutex(ListenersUp())
        var publicApp = Application(
            router: buildPublicRouter(services),
            server: .tokend(tls: tls),
            configuration: .init(address: .hostname(httpAddress.host, port: httpAddress.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? httpAddress.port
                let bound = ListenAddress(host: httpAddress.host, port: port)
                // With port 0 the issuer is known only now.
                if configuredIssuer == nil { services.issuerIdentifier.set("\(scheme)://\(bound)") }
                logger.notice("public listener ready", metadata: ["address": "\(scheme)://\(bound)"])
                if let generatedTokenPath, let adminPort = readiness.withLock({ $0.publicBound(bound) }) {
                    FirstRun.printBanner(publicURL: services.issuerURL, adminPort: adminPort, adminTokenPath: generatedTokenPath)
                }
            },
            logger: logger)
        let adminApp = Application(
            router: buildAdminRouter(services),
            server: .tokend(tls: tls),
            configuration: .init(address: .hostname(adminAddress.host, port: adminAddress.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? adminAddress.port
                logger.notice("admin listener ready", metadata: ["address": "\(scheme)://\(ListenAddress(host: adminAddress.host, port: port))"])
                if let generatedTokenPath, readiness.withLock({ $0.adminBound(port) }) {
                    FirstRun.printBanner(publicURL: services.issuerURL, adminPort: port, adminTokenPath: generatedTokenPath)
                }
            },
            logger: logger)

        var services_: [any Service] = []
        if case .postgres(_, let client) = opened, let url = global.resolvedDatabaseURL {
            services_.append(client)
            services_.append(RevocationListener(
                configuration: try DatabaseURL(url).connectionConfiguration(), logger: logger, wake: { feed.wakeUp() }))
            if global.value(migrate, "TOKEND_MIGRATE") != "off" {
                let migrator = PostgresMigrator(client: client, logger: logger)
                publicApp.beforeServerStarts {
                    // Cancelled by SIGTERM, and bounded, so that an unreachable database ends the process.
                    try await cancelWhenGracefulShutdown {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask { try await migrator.migrate() }
                            group.addTask {
                                try await Task.sleep(for: .seconds(60))
                                throw StartupError("PostgreSQL did not answer within 60 s: migrations not applied")
                            }
                            try await group.next()
                            group.cancelAll()
                        }
                    }
                }
            }
        }
        if let tls {
            let interval = global.value(tlsReloadInterval, "TOKEND_TLS_RELOAD_INTERVAL").flatMap(parseDuration) ?? 2
            let hangups = await UnixSignalsSequence(trapping: .sighup)
            services_.append(TLSReloader(source: tls, signals: hangups, pollInterval: interval > 0 ? .milliseconds(Int(interval * 1000)) : nil, logger: logger))
        }
        services_.append(FeedService(feed: feed))
        services_.append(ExpiryCollector(store: store, interval: gcSeconds, logger: logger))
        services_.append(publicApp)
        services_.append(adminApp)
        // Last, so that it is the first to hear of a shutdown: the group stops services one by one
        // in reverse order, so the listeners keep serving until this one returns.
        let delay = global.value(shutdownDelay, "TOKEND_SHUTDOWN_DELAY").flatMap(parseDuration) ?? 0
        services_.append(DrainAnnouncer(lifecycle: services.lifecycle, delay: delay, logger: logger))

        var groupConfiguration = ServiceGroupConfiguration(
            services: services_.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        let drain = global.value(drainPeriod, "TOKEND_DRAIN_PERIOD").flatMap(parseDuration) ?? 30
        groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int(drain * 1000) + Int(delay * 1000))
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch is CancellationError {
            // A graceful shutdown that reached a service mid-sleep: a normal stop.
        } catch {
            if case .sqlite(let store) = opened { try? await store.shutdown() }
            logger.error("tokend stopped", metadata: ["error": "\(String(describing: error))"])
            throw ExitCode.failure
        }
        if case .sqlite(let store) = opened { try await store.shutdown() }
    }
}

/// On shutdown: turns `/readyz` to 503 at once, then keeps the listeners serving for `delay` so
/// that load balancers stop sending before the sockets close; in-flight requests then finish as
/// each listener shuts down.
struct DrainAnnouncer: Service {
    let lifecycle: Lifecycle
    let delay: Double
    let logger: Logger

    func run() async throws {
        // Returns once this service is asked to shut down (or the task is cancelled).
        try? await gracefulShutdown()
        lifecycle.beginDraining()
        logger.notice("shutting down: /readyz now answers 503", metadata: ["delay_s": "\(delay)"])
        if delay > 0 { try? await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
    }
}

/// Runs the revocation feed for this replica's memory.
struct FeedService: Service {
    let feed: RevocationFeed

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            await feed.run()
        }
    }
}

/// Deletes expired tokens periodically (`tokend gc` does the same once).
struct ExpiryCollector: Service {
    let store: any TokendStore
    let interval: Double
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(interval)) } catch { return }
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
            throw StartupError("cannot write \(path)")
        }
        return (secret, path)
    }
}

/// Which listeners have bound, so that the first-run banner is printed once both are known.
struct ListenersUp {
    var publicAddress: ListenAddress?
    var adminPort: Int?

    /// Returns the admin port if the admin listener was already up.
    mutating func publicBound(_ address: ListenAddress) -> Int? {
        publicAddress = address
        return adminPort
    }

    /// Returns whether the public listener was already up.
    mutating func adminBound(_ port: Int) -> Bool {
        adminPort = port
        return publicAddress != nil
    }
}

struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum FirstRun {
    static func printBanner(publicURL: String, adminPort: Int, adminTokenPath: String) {
        let base = publicURL
        let scheme = publicURL.hasPrefix("https:") ? "https" : "http"
        FileHandle.standardOutput.write(Data("""

            tokend is running with the embedded store (dev mode).
              public API:  \(base)   (RFC 7662 /oauth2/introspect, RFC 7009 /oauth2/revoke, Connect RPC)
              admin API:   \(scheme)://127.0.0.1:\(adminPort)
              admin token: \(adminTokenPath)   (tokenctl finds it when run from this directory)

            Try next:
              tokenctl clients create resource-server --role introspect
              tokenctl tokens issue --client resource-server --subject alice
              tokenctl tokens introspect <access_token>

            """.utf8))
    }
}
