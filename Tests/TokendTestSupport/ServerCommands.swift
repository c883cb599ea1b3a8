import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the test harnesses (`PrivatePostgres`, `PrivatePgBouncer`) run a server's programs: as the
/// server's OS user (`TOKEND_TEST_PG_CTL_AS`, word-split, e.g. `runuser -u postgres --`; that one by
/// default when root, since neither PostgreSQL nor PgBouncer runs as root), from a directory that
/// user can enter, with the output in a file.
struct ServerCommands: Sendable {
    struct Output {
        var status: Int32
        var output: String
    }

    /// The command prefix that switches to the server's OS user; empty when we are that user.
    let asServerUser: [String]

    init() {
        if let prefix = ProcessInfo.processInfo.environment["TOKEND_TEST_PG_CTL_AS"] {
            asServerUser = prefix.split(whereSeparator: \.isWhitespace).map(String.init)
        } else {
            asServerUser = getuid() == 0 ? ["runuser", "-u", "postgres", "--"] : []
        }
    }

    /// The server's OS user's uid and gid; `nil` when commands run as ourselves.
    func owner() throws -> (uid: uid_t, gid: gid_t)? {
        guard !asServerUser.isEmpty else { return nil }
        let user = asServerUser.firstIndex(of: "-u").map { asServerUser[$0 + 1] } ?? "postgres"
        guard let entry = getpwnam(user) else { throw TestSetupError("no OS user \(user) for \(asServerUser)") }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    /// A new directory `/tmp/PREFIX-xxxxxxxx` (mode 0755) owned by the server's OS user.
    func makeDirectory(prefix: String) throws -> URL {
        let directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        try giveToServerUser(directory)
        return directory
    }

    /// `chown`s `path` to the server's OS user (nothing when commands run as ourselves).
    func giveToServerUser(_ path: URL) throws {
        guard let (uid, gid) = try owner() else { return }
        guard chown(path.path, uid, gid) == 0 else { throw TestSetupError("chown \(path.path) failed: errno \(errno)") }
    }

    /// Runs `argv` as the server's OS user from `cwd`, off the cooperative pool (the caller may be
    /// running load on it meanwhile).
    func run(_ argv: [String], cwd: URL) async throws -> Output {
        let full = asServerUser + argv
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try Self.spawnAndWait(full, cwd: cwd) })
            }
        }
    }

    /// `run`, blocking the calling thread (for `deinit` and `defer`).
    func runBlocking(_ argv: [String], cwd: URL) throws -> Output {
        try Self.spawnAndWait(asServerUser + argv, cwd: cwd)
    }

    /// Runs `argv` with its output in a file (never a pipe: a server it starts would inherit the
    /// pipe, and a reader waits for EOF until that server stops), from `cwd`, and waits for it.
    ///
    /// Not with Foundation's `Process`: on Linux it learns that a child exited when a socket it
    /// hands the child reaches EOF, and a server that `pg_ctl start` (or `pgbouncer -d`) leaves
    /// running inherits that socket, so `waitUntilExit()` would wait for the server to stop. Here
    /// the child is spawned directly, closes every inherited descriptor above 2 before exec'ing,
    /// and is reaped with `waitpid`.
    private static func spawnAndWait(_ argv: [String], cwd: URL) throws -> Output {
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-cmd-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: outURL) }
        let script =
            #"cd "$1" || exit 1; shift; for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null; fi; done; exec "$@""#
        let arguments = ["/bin/bash", "-c", script, "bash", cwd.path] + argv
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw TestSetupError("posix_spawn \(argv.first ?? "") failed: \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw TestSetupError("waitpid failed: errno \(errno)") }
        }
        // WIFEXITED / WEXITSTATUS; a signal counts as failure.
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(status: exitStatus, output: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "")
    }

    /// A 127.0.0.1 port nothing listens on right now (bound to port 0, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw TestSetupError("bind() failed") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestSetupError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

extension Mutex where Value == Bool {
    /// Sets the flag; `true` only for the call that set it first (an idempotent `destroy()`).
    func setForTheFirstTime() -> Bool {
        withLock { flag in
            defer { flag = true }
            return !flag
        }
    }
}
