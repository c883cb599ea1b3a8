import Foundation
import PostgresNIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A PostgreSQL server of one test's own: initdb into a temp dir, started on a free 127.0.0.1 port.
///
/// For tests that stop or restart the server (the shared one of `scripts/with-postgres` serves
/// suites running in parallel and must stay up). Uses the binaries `scripts/with-postgres` found
/// (`TOKEND_TEST_PG_BIN`) and runs them as the server's OS user (`TOKEND_TEST_PG_CTL_AS`, word-split,
/// e.g. `runuser -u postgres --` when root). pg_ctl always gets `-l LOGFILE`: without it the server
/// inherits pg_ctl's output and a reader of that output waits for EOF forever.
///
/// Call `destroy()` when done (also done by `deinit`): stops the server and deletes the directory.
public final class PrivatePostgres: Sendable {
    public let port: Int
    public let directory: URL
    public var dataDirectory: URL { directory.appendingPathComponent("data") }
    public var logFile: URL { directory.appendingPathComponent("postgres.log") }
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    public var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    private let binDirectory: String
    private let commands = ServerCommands()
    private let destroyed = Mutex(false)

    /// initdb + start; returns when the server accepts connections. With `tls`, the server has
    /// `ssl = on` with that certificate and key (and still accepts connections without TLS).
    public static func start(tls: (certificate: URL, key: URL)? = nil) async throws -> PrivatePostgres {
        let server = try PrivatePostgres()
        do {
            try await server.initialise()
            if let tls { try server.enableTLS(certificate: tls.certificate, key: tls.key) }
            try await server.start()
        } catch {
            server.destroy()
            throw error
        }
        return server
    }

    private init() throws {
        let environment = ProcessInfo.processInfo.environment
        binDirectory = try environment["TOKEND_TEST_PG_BIN"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.findBinDirectory()
        directory = try commands.makeDirectory(prefix: "tokend-privpg")
        port = try ServerCommands.freePort()
    }

    deinit { destroy() }

    private static func findBinDirectory() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted()
        for version in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/initdb") {
            return "\(root)/\(version)/bin"
        }
        throw TestSetupError("PrivatePostgres: no PostgreSQL binaries (set TOKEND_TEST_PG_BIN or run through scripts/with-postgres)")
    }

    private func initialise() async throws {
        let data = dataDirectory.path
        var result = try await serverCommand("initdb", ["-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "-N"])
        if result.status != 0 {
            // Older initdb may not know C.UTF-8.
            try? FileManager.default.removeItem(at: dataDirectory)
            result = try await serverCommand("initdb", ["-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "-N"])
        }
        guard result.status == 0 else { throw TestSetupError("PrivatePostgres: initdb failed: \(result.output.suffix(2000))") }
        // Also in postgresql.conf, so that a plain `pg_ctl start` keeps them.
        let settings = """

            # PrivatePostgres
            port = \(port)
            unix_socket_directories = '\(directory.path)'
            listen_addresses = '127.0.0.1'
            max_connections = 100

            """
        let conf = dataDirectory.appendingPathComponent("postgresql.conf")
        let handle = try FileHandle(forWritingTo: conf)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(settings.utf8))
        try handle.close()
    }

    /// Copies the pair into the data directory, owned by the server's OS user with mode 0600 (as
    /// PostgreSQL requires of a key), and turns `ssl` on.
    private func enableTLS(certificate: URL, key: URL) throws {
        for (source, name) in [(certificate, "server.crt"), (key, "server.key")] {
            let destination = dataDirectory.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: destination)
            try FileManager.default.copyItem(at: source, to: destination)
            try commands.giveToServerUser(destination)
            guard chmod(destination.path, 0o600) == 0 else { throw TestSetupError("PrivatePostgres: chmod failed: errno \(errno)") }
        }
        let handle = try FileHandle(forWritingTo: dataDirectory.appendingPathComponent("postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".utf8))
        try handle.close()
    }

    /// A hot standby of this server, streaming from it: `pg_basebackup -R -X stream` into a
    /// server of its own (its own port and directory), started; returns when it accepts
    /// connections. Destroy it before this one.
    public func startStandby() async throws -> PrivatePostgres {
        let standby = try PrivatePostgres()
        do {
            let copied = try await standby.serverCommand(
                "pg_basebackup",
                ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-D", standby.dataDirectory.path, "-R", "-X", "stream", "-c", "fast"]
            )
            guard copied.status == 0 else { throw TestSetupError("PrivatePostgres: pg_basebackup failed: \(copied.output.suffix(2000))") }
            // The copy has the primary's settings; later lines win.
            let settings = """

                # PrivatePostgres standby
                port = \(standby.port)
                unix_socket_directories = '\(standby.directory.path)'
                hot_standby = on

                """
            let handle = try FileHandle(forWritingTo: standby.dataDirectory.appendingPathComponent("postgresql.conf"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(settings.utf8))
            try handle.close()
            try await standby.start()
        } catch {
            standby.destroy()
            throw error
        }
        return standby
    }

    /// Runs one SQL statement through `psql` on `database`; returns its unaligned output.
    @discardableResult
    public func sql(_ statement: String, database: String = "postgres") async throws -> String {
        let result = try await serverCommand(
            "psql",
            ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement]
        )
        guard result.status == 0 else { throw TestSetupError("PrivatePostgres: psql failed: \(result.output.suffix(2000))") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts the server; returns when it accepts connections.
    public func start() async throws {
        let result = try await serverCommand(
            "pg_ctl",
            [
                "-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60", "start",
                "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1",
            ]
        )
        guard result.status == 0 else { throw TestSetupError("PrivatePostgres: start failed: \(result.output)\n\(logTail)") }
    }

    /// Stops the server (fast: open connections are terminated); returns when it is down.
    public func stop() async throws {
        let result = try await serverCommand("pg_ctl", ["-D", dataDirectory.path, "-m", "fast", "-w", "-t", "60", "stop"])
        guard result.status == 0 else { throw TestSetupError("PrivatePostgres: stop failed: \(result.output)\n\(logTail)") }
    }

    /// Stops and starts the server with the same settings.
    public func restart() async throws {
        let result = try await serverCommand("pg_ctl", ["-D", dataDirectory.path, "-l", logFile.path, "-w", "-t", "60", "-m", "fast", "restart"])
        guard result.status == 0 else { throw TestSetupError("PrivatePostgres: restart failed: \(result.output)\n\(logTail)") }
    }

    /// Sends `signal` to every process of the server: the postmaster (from `postmaster.pid`) first,
    /// so that it forks nothing new, then each of its children (backends, background workers).
    /// SIGSTOP freezes the server with every connection left open (nothing answers, nothing is
    /// reset, as with a blackholed database); SIGCONT resumes it. Returns the processes signalled.
    @discardableResult
    public func signalEveryProcess(_ signal: Int32) throws -> [pid_t] {
        let pidFile = dataDirectory.appendingPathComponent("postmaster.pid")
        guard let first = (try? String(contentsOf: pidFile, encoding: .utf8))?.split(separator: "\n").first,
            let postmaster = pid_t(first.trimmingCharacters(in: .whitespaces))
        else {
            throw TestSetupError("PrivatePostgres: no postmaster.pid in \(dataDirectory.path)")
        }
        guard kill(postmaster, signal) == 0 else { throw TestSetupError("PrivatePostgres: kill(\(postmaster), \(signal)) failed: errno \(errno)") }
        var signalled = [postmaster]
        for child in Self.children(of: postmaster) where kill(child, signal) == 0 { signalled.append(child) }
        return signalled
    }

    /// Processes whose parent is `parent`, from /proc/PID/stat (`pid (comm) state ppid …`).
    private static func children(of parent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, pid_t(fields[1]) == parent else { return nil }
            return pid
        }
    }

    public var logTail: String {
        String(((try? String(contentsOf: logFile, encoding: .utf8)) ?? "").suffix(3000))
    }

    /// Stops the server (immediately if a fast stop fails) and deletes its directory. Idempotent;
    /// blocks, so that it can run from `deinit` and `defer`.
    public func destroy() {
        guard destroyed.setForTheFirstTime() else { return }
        if FileManager.default.fileExists(atPath: dataDirectory.appendingPathComponent("postmaster.pid").path) {
            let fast = try? runBlocking(serverArguments("pg_ctl", ["-D", dataDirectory.path, "-m", "fast", "-w", "-t", "30", "stop"]))
            if fast?.status != 0 {
                _ = try? runBlocking(serverArguments("pg_ctl", ["-D", dataDirectory.path, "-m", "immediate", "-w", "stop"]))
            }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Running commands

    private func serverArguments(_ program: String, _ arguments: [String]) -> [String] {
        ["\(binDirectory)/\(program)"] + arguments
    }

    private func serverCommand(_ program: String, _ arguments: [String]) async throws -> ServerCommands.Output {
        try await commands.run(serverArguments(program, arguments), cwd: directory)
    }

    private func runBlocking(_ argv: [String]) throws -> ServerCommands.Output {
        try commands.runBlocking(argv, cwd: directory)
    }
}

/// What the tests look at and do on the shared test server from the database side.
public enum DatabaseProbe {
    /// A backend of `database` whose last statement was a LISTEN (the revocation feed's connection).
    public struct Backend: Sendable, Equatable, CustomStringConvertible {
        public var pid: Int32
        public var state: String?
        public var query: String
        public var description: String { "pid \(pid) (\(state ?? "?")): \(query)" }
    }

    /// Backends connected to `database` whose current or last statement is a `LISTEN`.
    public static func listeners(in database: String) async throws -> [Backend] {
        let found = Mutex<[Backend]>([])
        try await withAdminClient(try TestEnvironment.databaseURL()) { client in
            let rows = try await client.query(
                "SELECT pid, state, query FROM pg_stat_activity WHERE datname = \(database) AND query ILIKE 'LISTEN%' ORDER BY pid"
            )
            var result: [Backend] = []
            for try await row in rows {
                let (pid, state, query) = try row.decode((Int32, String?, String).self)
                result.append(Backend(pid: pid, state: state, query: query))
            }
            found.withLock { $0 = result }
        }
        return found.withLock { $0 }
    }

    /// `pg_terminate_backend` on each; returns how many were terminated.
    @discardableResult
    public static func terminate(_ pids: [Int32]) async throws -> Int {
        let count = Mutex(0)
        try await withAdminClient(try TestEnvironment.databaseURL()) { client in
            for pid in pids {
                let rows = try await client.query("SELECT pg_terminate_backend(\(pid))")
                for try await row in rows {
                    if try row.decode(Bool.self) { count.withLock { $0 += 1 } }
                }
            }
        }
        return count.withLock { $0 }
    }

    /// `ALTER DATABASE … ALLOW_CONNECTIONS`: while false, no new connection to `database` is
    /// accepted (superusers included); connections already open keep working.
    public static func allowConnections(to database: String, _ allow: Bool) async throws {
        guard database.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { throw TestSetupError("bad database name") }
        try await withAdminClient(try TestEnvironment.databaseURL()) { client in
            // Identifiers cannot be bound; the name was checked above.
            try await client.query("ALTER DATABASE \(unescaped: database) ALLOW_CONNECTIONS \(unescaped: allow ? "true" : "false")")
        }
    }
}
