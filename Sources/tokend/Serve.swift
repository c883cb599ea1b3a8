import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TokendServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server (the default command).",
        discussion: """
            With no configuration, serves the embedded store in ./.tokend on 127.0.0.1:8080 (public) \
            and 127.0.0.1:8081 (admin), and writes a generated admin token to ./.tokend/admin-token.
            Every setting is an environment variable (SPEC "Configuration"); a flag of the same name overrides it.
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
    @Option(help: "Memory bound of the token cache, e.g. 256MiB or 1GiB (env TOKEND_CACHE_MEMORY, default 256MiB).") var cacheMemory: String?
    @Option(help: "Apply pending migrations at start-up: auto or off (env TOKEND_MIGRATE, default auto).") var migrate: String?
    @Option(help: "How often expired tokens are deleted (env TOKEND_GC_INTERVAL, default 10m).") var gcInterval: String?
    @Option(help: "After SIGTERM, keep serving this long with /readyz at 503 before closing the listeners (env TOKEND_SHUTDOWN_DELAY, default 0s).")
    var shutdownDelay: String?
    @Option(help: "Longest wait for in-flight requests during shutdown (env TOKEND_DRAIN_PERIOD, default 30s).") var drainPeriod: String?
    @Option(help: "Time limit of each store call; past it the request answers 503 (env TOKEND_STORE_TIMEOUT, default 2s).") var storeTimeout: String?
    @Option(help: "PEM certificate chain: serve both listeners over TLS (env TOKEND_TLS_CERT_FILE; reloaded on SIGHUP or change).") var tlsCertFile:
        String?
    @Option(help: "PEM private key of --tls-cert-file (env TOKEND_TLS_KEY_FILE).") var tlsKeyFile: String?
    @Option(help: "How often the TLS files are checked for changes; 0 = on SIGHUP only (env TOKEND_TLS_RELOAD_INTERVAL, default 2s).")
    var tlsReloadInterval: String?
    @Option(help: "TokenReview username prefix; - for none (env TOKEND_K8S_USERNAME_PREFIX, default tokend:).") var k8sUsernamePrefix: String?
    @Option(help: "TokenReview group name prefix; - for none (env TOKEND_K8S_GROUPS_PREFIX, default tokend:).") var k8sGroupsPrefix: String?

    /// The settings, read once from flags and environment; a bad one is a usage error.
    private func serveConfiguration() throws -> ServeConfiguration {
        let flags: [String: String?] = [
            "TOKEND_DATABASE_URL": global.databaseURL, "TOKEND_DATA_DIR": global.dataDir,
            "TOKEND_HTTP_ADDR": httpAddr, "TOKEND_ADMIN_ADDR": adminAddr, "TOKEND_ADMIN_TOKEN": adminToken,
            "TOKEND_ISSUER": issuer, "TOKEND_MAX_STALENESS": maxStaleness, "TOKEND_CACHE_ENTRIES": cacheEntries,
            "TOKEND_CACHE_MEMORY": cacheMemory,
            "TOKEND_MIGRATE": migrate, "TOKEND_GC_INTERVAL": gcInterval, "TOKEND_SHUTDOWN_DELAY": shutdownDelay,
            "TOKEND_DRAIN_PERIOD": drainPeriod, "TOKEND_STORE_TIMEOUT": storeTimeout, "TOKEND_TLS_CERT_FILE": tlsCertFile,
            "TOKEND_TLS_KEY_FILE": tlsKeyFile, "TOKEND_TLS_RELOAD_INTERVAL": tlsReloadInterval,
            "TOKEND_K8S_USERNAME_PREFIX": k8sUsernamePrefix, "TOKEND_K8S_GROUPS_PREFIX": k8sGroupsPrefix,
        ]
        do {
            return try ServeConfiguration { name in global.value(flags[name] ?? nil, name) }
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        _ = try serveConfiguration()
    }

    func run() async throws {
        let configuration = try serveConfiguration()
        let logger = global.bootstrapLogging()
        let server: TokendServer
        do {
            server = try await buildServiceGroup(configuration: configuration, logger: logger)
        } catch {
            throw StartupError(error)
        }
        do {
            try await server.group.run()
        } catch is CancellationError {
            // A graceful shutdown that reached a service mid-sleep: a normal stop.
        } catch {
            logger.error("tokend stopped", metadata: ["error": "\(String(describing: error))"])
            throw ExitCode.failure
        }
    }
}
