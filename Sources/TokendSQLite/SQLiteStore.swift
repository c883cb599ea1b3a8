import Foundation
import Logging
import NIOCore
import SQLiteNIO
import Synchronization
import TokendCore
#if canImport(Glibc)
import Glibc
#endif

/// The embedded single-node store: one SQLite file in the data directory.
///
/// SQLite via `vapor/sqlite-nio`: it bundles its own SQLite build (no system library to install)
/// and runs every call on NIO's thread pool, so nothing blocks an event loop. WAL journal with
/// `synchronous=FULL`: a commit is on disk before it returns, so a kill -9 loses no acknowledged
/// write. One connection, used by one operation at a time; an exclusive lock file keeps a second
/// process off the same data directory.
public final class SQLiteStore: TokendStore {
    public let name = "sqlite"
    private let connection: SQLiteConnection
    private let gate = AsyncGate()
    private let lockFD: Int32
    private let logger: Logger

    private init(connection: SQLiteConnection, lockFD: Int32, logger: Logger) {
        self.connection = connection
        self.lockFD = lockFD
        self.logger = logger
    }

    deinit {
        if lockFD >= 0 { close(lockFD) }
    }

    /// Opens (creating if needed) `directory/tokend.sqlite3` and applies pending migrations.
    public static func open(directory: String, logger: Logger) async throws -> SQLiteStore {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let lockPath = directory + "/tokend.lock"
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TokendError.invalidRequest("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw TokendError.invalidRequest(
                "another tokend process is using the data directory \(directory); stop it or set TOKEND_DATA_DIR to another directory")
        }
        let connection = try await SQLiteConnection.open(storage: .file(path: directory + "/tokend.sqlite3"), logger: logger)
        let store = SQLiteStore(connection: connection, lockFD: fd, logger: logger)
        try await store.execute("PRAGMA journal_mode=WAL")
        try await store.execute("PRAGMA synchronous=FULL")
        try await store.execute("PRAGMA foreign_keys=ON")
        try await store.execute("PRAGMA busy_timeout=5000")
        try await store.migrate()
        return store
    }

    /// Closes the database and releases the data directory.
    public func shutdown() async throws {
        try await connection.close()
    }

    // MARK: Schema

    public func migrationStatus() async throws -> MigrationStatus {
        let applied = try await gate.run { try await self.appliedVersions() }
        return MigrationStatus(applied: applied.sorted(), pending: SQLiteMigrations.all.filter { !applied.contains($0.version) })
    }

    private func migrate() async throws {
        try await transaction {
            try await self.execute("CREATE TABLE IF NOT EXISTS tokend_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
            let applied = try await self.appliedVersions()
            for migration in SQLiteMigrations.all.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
                for statement in migration.statements { try await self.execute(statement) }
                try await self.execute(
                    "INSERT INTO tokend_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .float(Date().timeIntervalSince1970)])
                self.logger.info("migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
        }
    }

    private func appliedVersions() async throws -> Set<Int> {
        let rows = try await select("SELECT version FROM tokend_migrations")
        return Set(rows.compactMap { $0.column("version")?.integer })
    }

    public func ping() async throws {
        _ = try await gate.run { try await self.select("SELECT 1 AS one") }
    }

    // MARK: Clients

    public func createClient(_ c: ClientRecord) async throws {
        try await gate.run {
            if try await !self.select("SELECT 1 AS one FROM clients WHERE client_id = ?", [.text(c.id)]).isEmpty {
                throw TokendError.alreadyExists("client \"\(c.id)\" exists already")
            }
            try await self.execute(
                """
                INSERT INTO clients (client_id, roles, audiences, secret_salt, secret_hash, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [.text(c.id), .text(json(c.sortedRoles)), .text(json(c.audiences)), blob(c.secretSalt), blob(c.secretHash),
                 .float(c.createdAt.timeIntervalSince1970), .float(c.createdAt.timeIntervalSince1970)])
        }
    }

    public func client(id: String) async throws -> ClientRecord? {
        try await gate.run {
            try await self.select("SELECT * FROM clients WHERE client_id = ?", [.text(id)]).first.map(Self.clientRecord)
        }
    }

    public func listClients() async throws -> [ClientRecord] {
        try await gate.run { try await self.select("SELECT * FROM clients ORDER BY client_id").map(Self.clientRecord) }
    }

    public func deleteClient(id: String) async throws -> Bool {
        try await gate.run {
            try await !self.select("DELETE FROM clients WHERE client_id = ? RETURNING client_id", [.text(id)]).isEmpty
        }
    }

    public func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8]) async throws -> Bool {
        try await gate.run {
            try await !self.select(
                "UPDATE clients SET secret_salt = ?, secret_hash = ?, updated_at = ? WHERE client_id = ? RETURNING client_id",
                [blob(salt), blob(hash), .float(Date().timeIntervalSince1970), .text(id)]
            ).isEmpty
        }
    }

    private static func clientRecord(_ row: SQLiteRow) -> ClientRecord {
        ClientRecord(
            id: row.column("client_id")?.string ?? "",
            roles: Set(strings(row.column("roles")).compactMap(Role.init(rawValue:))),
            audiences: strings(row.column("audiences")),
            secretSalt: bytes(row.column("secret_salt")), secretHash: bytes(row.column("secret_hash")),
            createdAt: date(row.column("created_at")) ?? Date(timeIntervalSince1970: 0))
    }

    // MARK: Tokens

    public func insertTokens(_ tokens: [TokenRecord]) async throws {
        guard let first = tokens.first else { return }
        let expiresAt = tokens.map(\.expiresAt).max() ?? first.expiresAt
        try await transaction {
            try await self.execute(
                """
                INSERT INTO grants (grant_id, client_id, subject, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (grant_id) DO UPDATE SET expires_at = MAX(grants.expires_at, excluded.expires_at)
                """,
                [.text(first.grantID), .text(first.clientID), optional(first.subject), time(first.issuedAt), time(expiresAt)])
            for t in tokens {
                try await self.execute(
                    """
                    INSERT INTO tokens (token_hash, kind, client_id, subject, username, scope, audiences, issuer,
                        issued_at, not_before, expires_at, jti, grant_id, cnf_jkt, cnf_x5t_s256, extra)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [blob(t.hash.bytes), .integer(t.kind.rawValue), .text(t.clientID), optional(t.subject), optional(t.username),
                     optional(t.scope), .text(json(t.audiences)), .text(t.issuer), time(t.issuedAt), t.notBefore.map(time) ?? .null,
                     time(t.expiresAt), .text(t.jti), .text(t.grantID), optional(t.confirmation?.jkt),
                     optional(t.confirmation?.x5tS256), .text(jsonObject(t.extra))])
            }
        }
    }

    public func token(hash: TokenHash) async throws -> TokenRecord? {
        try await gate.run {
            try await self.select("SELECT * FROM tokens WHERE token_hash = ?", [blob(hash.bytes)]).first.flatMap(Self.tokenRecord)
        }
    }

    public func token(jti: String) async throws -> TokenRecord? {
        try await gate.run {
            try await self.select("SELECT * FROM tokens WHERE jti = ?", [.text(jti)]).first.flatMap(Self.tokenRecord)
        }
    }

    private static func tokenRecord(_ row: SQLiteRow) -> TokenRecord? {
        guard let hash = TokenHash(validating: bytes(row.column("token_hash"))) else { return nil }
        let jkt = row.column("cnf_jkt")?.string
        let x5t = row.column("cnf_x5t_s256")?.string
        let extra = (row.column("extra")?.string).flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
        return TokenRecord(
            hash: hash, kind: TokenKind(rawValue: row.column("kind")?.integer ?? 1) ?? .access,
            clientID: row.column("client_id")?.string ?? "", subject: row.column("subject")?.string,
            username: row.column("username")?.string, scope: row.column("scope")?.string,
            audiences: strings(row.column("audiences")), issuer: row.column("issuer")?.string ?? "",
            issuedAt: date(row.column("issued_at")) ?? Date(timeIntervalSince1970: 0),
            notBefore: date(row.column("not_before")),
            expiresAt: date(row.column("expires_at")) ?? Date(timeIntervalSince1970: 0),
            jti: row.column("jti")?.string ?? "", grantID: row.column("grant_id")?.string ?? "",
            confirmation: (jkt == nil && x5t == nil) ? nil : Confirmation(jkt: jkt, x5tS256: x5t),
            extra: extra ?? [:], revokedAt: date(row.column("revoked_at")))
    }

    // MARK: Revocation

    public func revoke(_ selector: RevocationSelector, reason: String, at now: Date) async throws -> RevocationOutcome {
        try await transaction {
            var kind = selector.kind
            var value: String
            var affected: [SQLiteRow]
            let returning = "RETURNING token_hash, expires_at"
            switch selector {
            case .token, .jti:
                let found: SQLiteRow?
                if case .token(let hash) = selector {
                    found = try await self.select("SELECT kind, grant_id, jti FROM tokens WHERE token_hash = ?", [blob(hash.bytes)]).first
                } else if case .jti(let jti) = selector {
                    found = try await self.select("SELECT kind, grant_id, jti FROM tokens WHERE jti = ?", [.text(jti)]).first
                } else { preconditionFailure() }
                guard let found, let grantID = found.column("grant_id")?.string, let jti = found.column("jti")?.string else {
                    return RevocationOutcome(revoked: 0, seq: 0)
                }
                value = jti
                if found.column("kind")?.integer == TokenKind.refresh.rawValue {
                    // RFC 7009 §2.1: revoking a refresh token invalidates its grant.
                    kind = "grant"
                    value = grantID
                    try await self.execute("UPDATE grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL", [time(now), .text(grantID)])
                    affected = try await self.select(
                        "UPDATE tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL \(returning)", [time(now), .text(grantID)])
                } else {
                    affected = try await self.select(
                        "UPDATE tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL \(returning)", [time(now), .text(jti)])
                }
                if affected.isEmpty { return RevocationOutcome(revoked: 0, seq: 0) }
            case .subject(let subject):
                value = subject
                affected = try await self.select(
                    "UPDATE tokens SET revoked_at = ? WHERE subject = ? AND revoked_at IS NULL \(returning)", [time(now), .text(subject)])
            case .client(let clientID):
                value = clientID
                affected = try await self.select(
                    "UPDATE tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL \(returning)", [time(now), .text(clientID)])
            case .grant(let grantID):
                value = grantID
                try await self.execute("UPDATE grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL", [time(now), .text(grantID)])
                affected = try await self.select(
                    "UPDATE tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL \(returning)", [time(now), .text(grantID)])
            }
            let hashes = affected.map { Self.bytes($0.column("token_hash")).hexString }
            let latestExpiry = affected.compactMap { Self.date($0.column("expires_at")) }.max().map { max($0, now) } ?? now
            let logged = (kind == "token" || kind == "jti" || kind == "grant") ? hashes : []
            let rows = try await self.select(
                """
                INSERT INTO revocations (kind, value, token_hashes, reason, revoked_count, created_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq
                """,
                [.text(kind), .text(value), .text(json(logged)), .text(reason), .integer(hashes.count), time(now), time(latestExpiry)])
            let seq = Int64(rows.first?.column("seq")?.integer ?? 0)
            return RevocationOutcome(revoked: Int64(hashes.count), seq: seq)
        }
    }

    public func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry] {
        try await gate.run {
            try await self.select("SELECT * FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?", [.integer(Int(after)), .integer(limit)])
                .map { row in
                    RevocationEntry(
                        seq: Int64(row.column("seq")?.integer ?? 0), kind: row.column("kind")?.string ?? "",
                        value: row.column("value")?.string ?? "",
                        tokenHashes: Self.strings(row.column("token_hashes")).compactMap(TokenHash.init(hex:)),
                        reason: row.column("reason")?.string ?? "", revokedCount: Int64(row.column("revoked_count")?.integer ?? 0),
                        createdAt: Self.date(row.column("created_at")) ?? Date(timeIntervalSince1970: 0),
                        expiresAt: Self.date(row.column("expires_at")))
                }
        }
    }

    public func revocationHead() async throws -> Int64 {
        try await gate.run {
            Int64(try await self.select("SELECT COALESCE(MAX(seq), 0) AS head FROM revocations").first?.column("head")?.integer ?? 0)
        }
    }

    public func deleteExpired(before cutoff: Date) async throws -> Int {
        try await transaction {
            let deleted = try await self.select("DELETE FROM tokens WHERE expires_at < ? RETURNING jti", [time(cutoff)]).count
            try await self.execute(
                "DELETE FROM grants WHERE expires_at < ? AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.grant_id = grants.grant_id)",
                [time(cutoff)])
            // The newest entry always stays, so that the log's head (AdminService/Status) never goes back.
            try await self.execute("DELETE FROM revocations WHERE expires_at < ? AND seq < (SELECT MAX(seq) FROM revocations)", [time(cutoff)])
            return deleted
        }
    }

    // MARK: Plumbing

    /// Runs `body` inside BEGIN IMMEDIATE … COMMIT with the connection to itself.
    private func transaction<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await gate.run {
            try await self.execute("BEGIN IMMEDIATE")
            do {
                let result = try await body()
                try await self.execute("COMMIT")
                return result
            } catch {
                try? await self.execute("ROLLBACK")
                throw error
            }
        }
    }

    private func execute(_ sql: String, _ binds: [SQLiteData] = []) async throws {
        try await connection.query(sql, binds) { _ in }
    }

    private func select(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let rows = RowCollector()
        try await connection.query(sql, binds) { rows.append($0) }
        return rows.rows
    }

    private static func strings(_ data: SQLiteData?) -> [String] {
        guard let text = data?.string else { return [] }
        return (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }

    private static func bytes(_ data: SQLiteData?) -> [UInt8] {
        guard case .blob(let buffer)? = data else { return [] }
        return Array(buffer.readableBytesView)
    }

    private static func date(_ data: SQLiteData?) -> Date? {
        guard let data, data != .null, let seconds = data.double else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }
}

private func json(_ strings: [String]) -> String {
    String(decoding: (try? JSONEncoder().encode(strings)) ?? Data("[]".utf8), as: UTF8.self)
}

private func jsonObject(_ object: [String: String]) -> String {
    String(decoding: (try? JSONEncoder().encode(object)) ?? Data("{}".utf8), as: UTF8.self)
}

private func blob(_ bytes: [UInt8]) -> SQLiteData { .blob(ByteBuffer(bytes: bytes)) }
private func time(_ date: Date) -> SQLiteData { .float(date.timeIntervalSince1970) }
private func optional(_ text: String?) -> SQLiteData { text.map { .text($0) } ?? .null }

/// Collects rows handed over by sqlite-nio's row callback.
private final class RowCollector: Sendable {
    private let storage = Mutex<[SQLiteRow]>([])
    func append(_ row: SQLiteRow) { storage.withLock { $0.append(row) } }
    var rows: [SQLiteRow] { storage.withLock { $0 } }
}

/// Lets one operation at a time use the connection, in arrival order (a transaction spans awaits).
final class AsyncGate: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        do {
            let result = try await body()
            release()
            return result
        } catch {
            release()
            throw error
        }
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
