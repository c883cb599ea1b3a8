import Foundation
import Logging
import PostgresNIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PgBouncer in transaction pooling mode in front of a PostgreSQL server, on a free 127.0.0.1 port,
/// with its ini, auth file, log and pid file in a temp dir of its own.
///
/// Debian's `pgbouncer` (1.18 on Debian 12: no named prepared statements in transaction mode;
/// `scripts/with-postgres` installs it when missing), or `TOKEND_TEST_PGBOUNCER`. It runs as the
/// server's OS user like `PrivatePostgres` (`TOKEND_TEST_PG_CTL_AS`; PgBouncer refuses to run as
/// root), daemonized with a pid file. Every database of the server is reachable under its own name
/// (`* =`), as user `postgres` (`auth_type = trust`; the server must trust it too).
///
/// `server_round_robin = 1`: idle server connections are reused oldest first instead of last in,
/// first out, so consecutive transactions of one client land on different server connections
/// whenever there are several. Anything that leans on session state then fails at once instead of
/// once in a while.
///
/// Call `destroy()` when done (also done by `deinit`): stops PgBouncer and deletes the directory.
public final class PrivatePgBouncer: Sendable {
    public let port: Int
    public let directory: URL
    /// The PostgreSQL server behind it.
    public let serverHost: String
    public let serverPort: Int
    public var logFile: URL { directory.appendingPathComponent("pgbouncer.log") }
    var pidFile: URL { directory.appendingPathComponent("pgbouncer.pid") }
    var configurationFile: URL { directory.appendingPathComponent("pgbouncer.ini") }

    private let commands = ServerCommands()
    private let destroyed = Mutex(false)

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE?pooler=transaction`: `database` on the server
    /// behind, through PgBouncer.
    public func url(database: String) -> String {
        "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable&pooler=transaction"
    }

    /// Starts PgBouncer in front of `host:port`, with at most `poolSize` server connections per
    /// database; returns once a connection through it answers a query.
    public static func start(serverHost: String = "127.0.0.1", serverPort: Int, poolSize: Int = 10) async throws -> PrivatePgBouncer {
        let bouncer = try PrivatePgBouncer(serverHost: serverHost, serverPort: serverPort)
        do {
            try bouncer.writeConfiguration(poolSize: poolSize)
            try await bouncer.launch()
            try await bouncer.waitUntilReady()
        } catch {
            bouncer.destroy()
            throw error
        }
        return bouncer
    }

    /// In front of the shared test server (`TOKEND_TEST_DATABASE_URL`).
    public static func startInFrontOfTestServer(poolSize: Int = 10) async throws -> PrivatePgBouncer {
        guard let server = URLComponents(string: try TestEnvironment.databaseURL()), let host = server.host else {
            throw TestSetupError("bad TOKEND_TEST_DATABASE_URL")
        }
        return try await start(serverHost: host, serverPort: server.port ?? 5432, poolSize: poolSize)
    }

    private init(serverHost: String, serverPort: Int) throws {
        self.serverHost = serverHost
        self.serverPort = serverPort
        directory = try commands.makeDirectory(prefix: "tokend-pgbouncer")
        port = try ServerCommands.freePort()
    }

    deinit { destroy() }

    private static func binary() throws -> String {
        // A path; `1` only turns on the conformance suites' PgBouncer case (`StoreKind.conformanceCases`).
        if let path = ProcessInfo.processInfo.environment["TOKEND_TEST_PGBOUNCER"], path.contains("/") { return path }
        for path in ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw TestSetupError("PrivatePgBouncer: no pgbouncer binary (apt-get install pgbouncer, or run through scripts/with-postgres)")
    }

    private func writeConfiguration(poolSize: Int) throws {
        // Values are ours (a loopback address, ports, paths under /tmp without spaces).
        let ini = """
            [databases]
            * = host=\(serverHost) port=\(serverPort)

            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = trust
            auth_file = \(directory.path)/users.txt
            pool_mode = transaction
            server_round_robin = 1
            default_pool_size = \(poolSize)
            max_client_conn = 500
            logfile = \(logFile.path)
            pidfile = \(pidFile.path)
            ignore_startup_parameters = extra_float_digits

            """
        let users = #""postgres" """# + "\n"
        for (name, text) in [("pgbouncer.ini", ini), ("users.txt", users)] {
            let file = directory.appendingPathComponent(name)
            try Data(text.utf8).write(to: file)
            try commands.giveToServerUser(file)
        }
    }

    /// `pgbouncer -d`: it forks, the child writes the pid file and serves, the parent exits.
    private func launch() async throws {
        let result = try await commands.run([try Self.binary(), "-d", configurationFile.path], cwd: directory)
        guard result.status == 0 else {
            throw TestSetupError("PrivatePgBouncer: pgbouncer -d failed (\(result.status)): \(result.output.suffix(2000))\n\(logTail)")
        }
    }

    /// Polls until a connection through PgBouncer to the `postgres` database answers `SELECT 1`.
    private func waitUntilReady() async throws {
        var configuration = PostgresConnection.Configuration(
            host: "127.0.0.1",
            port: port,
            username: "postgres",
            password: nil,
            database: "postgres",
            tls: .disable
        )
        configuration.options.connectTimeout = .seconds(5)
        var logger = Logger(label: "tokend.test.pgbouncer")
        logger.logLevel = .critical
        do {
            try await poll(until: "PgBouncer on port \(port) answers", within: .seconds(30)) {
                guard let connection = try? await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger) else {
                    return false
                }
                do {
                    for try await _ in try await connection.query("SELECT 1", logger: logger) {}
                    try? await connection.close()
                    return true
                } catch {
                    try? await connection.close()
                    return false
                }
            }
        } catch {
            throw TestSetupError("\(error)\n\(logTail)")
        }
    }

    public var logTail: String {
        String(((try? String(contentsOf: logFile, encoding: .utf8)) ?? "").suffix(3000))
    }

    /// The daemon's pid, from its pid file.
    private var pid: pid_t? {
        (try? String(contentsOf: pidFile, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
    private static func hasExited(_ pid: pid_t) -> Bool {
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    /// Stops PgBouncer (SIGTERM: immediate shutdown; SIGKILL if it is still there after 10 s) and
    /// deletes its directory. Idempotent; blocks, so that it can run from `deinit` and `defer`.
    public func destroy() {
        guard destroyed.setForTheFirstTime() else { return }
        if let pid, pid > 1 {
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(10)
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            while !Self.hasExited(pid) {
                if ContinuousClock.now >= deadline {
                    kill(pid, SIGKILL)
                    break
                }
                nanosleep(&pause, nil)
            }
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
