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
    /// The database file, `tokend.sqlite3` in the data directory.
    public let path: String
    private let connection: SQLiteConnection
    let gate = AsyncGate()
    private let directoryLock: DirectoryLock
    private let logger: Logger

    private init(path: String, connection: SQLiteConnection, directoryLock: DirectoryLock, logger: Logger) {
        self.path = path
        self.connection = connection
        self.directoryLock = directoryLock
        self.logger = logger
    }

    /// The data directory's lock file, held (`flock`) from `open` until `shutdown`, or until the
    /// store is released if it never shuts down. Released explicitly, not only by `deinit`: a task
    /// can still hold the store for a moment after a failed `open` or a `shutdown`, and a second
    /// `open` of the same directory then found it locked (a loaded test run did).
    private final class DirectoryLock: Sendable {
        private let fd: Mutex<Int32>
        init(fd: Int32) { self.fd = Mutex(fd) }
        func release() {
            fd.withLock { fd in
                if fd >= 0 { Glibc.close(fd) }
                fd = -1
            }
        }
        deinit { release() }
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
                "another tokend process is using the data directory \(directory); stop it or set TOKEND_DATA_DIR to another directory"
            )
        }
        let lock = DirectoryLock(fd: fd)
        let path = directory + "/tokend.sqlite3"
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            lock.release()
            throw error
        }
        let store = SQLiteStore(path: path, connection: connection, directoryLock: lock, logger: logger)
        do {
            try await store.execute("PRAGMA journal_mode=WAL")
            try await store.execute("PRAGMA synchronous=FULL")
            try await store.execute("PRAGMA foreign_keys=ON")
            try await store.execute("PRAGMA busy_timeout=5000")
            try await store.migrate()
        } catch {
            // A connection must be closed before it is released (sqlite-nio asserts it), also when
            // a migration failed or the opening task was cancelled.
            try? await store.shutdown()
            lock.release()
            throw error
        }
        return store
    }

    /// Closes the database and releases the data directory. Also from a cancelled task (a service
    /// group that failed, e.g. a listener whose port is taken, cancels its services): the future-based
    /// close runs whatever the task's state, where the async one would throw `CancellationError` and
    /// leave the connection open.
    public func shutdown() async throws {
        try await connection.close().get()
        directoryLock.release()
    }

    // MARK: Schema

    public func migrationStatus() async throws -> MigrationStatus {
        let applied = try await gate.run { try await self.appliedVersions() }
        return MigrationStatus(applied: applied.sorted(), pending: SQLiteMigrations.all.filter { !applied.contains($0.version) })
    }

    private func migrate() async throws {
        try await transaction {
            try await self.execute(
                "CREATE TABLE IF NOT EXISTS tokend_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            let applied = try await self.appliedVersions()
            for migration in SQLiteMigrations.all.sorted(by: { $0.version < $1.version }) where !applied.contains(migration.version) {
                for statement in migration.statements { try await self.execute(statement) }
                try await self.execute(
                    "INSERT INTO tokend_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .float(Date().timeIntervalSince1970)]
                )
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

    public func createClient(_ c: ClientRecord, audit: AuditEvent?) async throws {
        _ = try await audited(audit) {
            if try await !self.select("SELECT 1 AS one FROM clients WHERE client_id = ?", [.text(c.id)]).isEmpty {
                throw TokendError.alreadyExists("client \"\(c.id)\" exists already")
            }
            try await self.execute(
                """
                INSERT INTO clients (client_id, roles, audiences, scopes, secret_salt, secret_hash, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(c.id), .text(json(c.sortedRoles)), .text(json(c.audiences)), .text(json(c.scopes)), blob(c.secretSalt), blob(c.secretHash),
                    .float(c.createdAt.timeIntervalSince1970), .float(c.createdAt.timeIntervalSince1970),
                ]
            )
            return true
        }
    }

    public func client(id: String) async throws -> ClientRecord? {
        try await gate.run {
            try await self.select("SELECT \(Self.clientColumns) FROM clients WHERE client_id = ?", [.text(id)]).first.map(Self.clientRecord)
        }
    }

    public func listClients() async throws -> [ClientRecord] {
        try await gate.run { try await self.select("SELECT \(Self.clientColumns) FROM clients ORDER BY client_id").map(Self.clientRecord) }
    }

    public func deleteClient(id: String, audit: AuditEvent?) async throws -> Bool {
        try await audited(audit) {
            try await !self.select("DELETE FROM clients WHERE client_id = ? RETURNING client_id", [.text(id)]).isEmpty
        }
    }

    public func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8], audit: AuditEvent?) async throws -> Bool {
        try await audited(audit) {
            try await !self.select(
                "UPDATE clients SET secret_salt = ?, secret_hash = ?, updated_at = ? WHERE client_id = ? RETURNING client_id",
                [blob(salt), blob(hash), .float(Date().timeIntervalSince1970), .text(id)]
            ).isEmpty
        }
    }

    public func updateClient(_ c: ClientRecord, audit: AuditEvent?) async throws -> Bool {
        try await audited(audit) {
            try await !self.select(
                "UPDATE clients SET roles = ?, audiences = ?, scopes = ?, updated_at = ? WHERE client_id = ? RETURNING client_id",
                [.text(json(c.sortedRoles)), .text(json(c.audiences)), .text(json(c.scopes)), .float(Date().timeIntervalSince1970), .text(c.id)]
            ).isEmpty
        }
    }

    private static let clientColumns = "client_id, roles, audiences, scopes, secret_salt, secret_hash, created_at"

    private static func clientRecord(_ row: SQLiteRow) throws -> ClientRecord {
        let cells = Cells(row, table: "clients")
        let roles = try cells.json([String].self, "roles").map { name in
            guard let role = Role(rawValue: name) else { throw StoreCorruption(table: "clients", column: "roles") }
            return role
        }
        return ClientRecord(
            id: try cells.text("client_id"),
            roles: Set(roles),
            audiences: try cells.json([String].self, "audiences"),
            scopes: try cells.json([String].self, "scopes"),
            secretSalt: try cells.bytes("secret_salt"),
            secretHash: try cells.bytes("secret_hash"),
            createdAt: try cells.date("created_at")
        )
    }

    // MARK: Tokens

    public func insertTokens(_ tokens: [TokenRecord], audit: AuditEvent?) async throws {
        try await transaction {
            try await self.insert(tokens)
            if let audit { try await self.record(audit) }
        }
    }

    /// Inserts tokens and their grant (created, or its expiry extended), inside the caller's
    /// transaction. A new grant keeps the lifetime of its access token, for redemptions.
    func insert(_ tokens: [TokenRecord]) async throws {
        guard let first = tokens.first else { return }
        let expiresAt = tokens.map(\.expiresAt).max() ?? first.expiresAt
        let accessTTL = tokens.first { $0.kind == .access }.map { SQLiteData.integer(Int($0.expiresAt.timeIntervalSince($0.issuedAt))) }
        try await execute(
            """
            INSERT INTO grants (grant_id, client_id, subject, created_at, expires_at, access_ttl) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (grant_id) DO UPDATE SET expires_at = MAX(grants.expires_at, excluded.expires_at)
            """,
            [.text(first.grantID), .text(first.clientID), optional(first.subject), time(first.issuedAt), time(expiresAt), accessTTL ?? .null]
        )
        for t in tokens {
            try await execute(
                """
                INSERT INTO tokens (token_hash, kind, client_id, subject, username, scope, audiences, issuer,
                    issued_at, not_before, expires_at, jti, grant_id, cnf_jkt, cnf_x5t_s256, extra)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    blob(t.hash.bytes), .integer(t.kind.rawValue), .text(t.clientID), optional(t.subject), optional(t.username),
                    optional(t.scope), .text(json(t.audiences)), .text(t.issuer), time(t.issuedAt), t.notBefore.map(time) ?? .null,
                    time(t.expiresAt), .text(t.jti), .text(t.grantID), optional(t.confirmation?.jkt),
                    optional(t.confirmation?.x5tS256), .text(jsonObject(t.extra)),
                ]
            )
        }
    }

    public func token(hash: TokenHash) async throws -> TokenRecord? {
        try await gate.run {
            try await self.select("SELECT \(Self.tokenColumns) FROM tokens WHERE token_hash = ?", [blob(hash.bytes)]).first.map(Self.tokenRecord)
        }
    }

    /// The batch in one query (`IN` with one bound parameter per hash, at most 256 at a time).
    public func tokens(hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord] {
        let unique = Array(Set(hashes))
        var records: [TokenHash: TokenRecord] = [:]
        for start in stride(from: 0, to: unique.count, by: 256) {
            let part = unique[start..<min(start + 256, unique.count)]
            // Only placeholders are interpolated; the hashes are bound.
            let placeholders = Array(repeating: "?", count: part.count).joined(separator: ", ")
            let rows = try await gate.run {
                try await self.select("SELECT \(Self.tokenColumns) FROM tokens WHERE token_hash IN (\(placeholders))", part.map { blob($0.bytes) })
            }
            for row in rows {
                let record = try Self.tokenRecord(row)
                records[record.hash] = record
            }
        }
        return records
    }

    public func token(jti: String) async throws -> TokenRecord? {
        try await gate.run {
            try await self.select("SELECT \(Self.tokenColumns) FROM tokens WHERE jti = ?", [.text(jti)]).first.map(Self.tokenRecord)
        }
    }

    static let tokenColumns = """
        token_hash, kind, client_id, subject, username, scope, audiences, issuer, issued_at, not_before,
        expires_at, jti, grant_id, cnf_jkt, cnf_x5t_s256, extra, revoked_at, spent_at
        """

    static func tokenRecord(_ row: SQLiteRow) throws -> TokenRecord {
        let cells = Cells(row, table: "tokens")
        guard let hash = TokenHash(validating: try cells.bytes("token_hash")) else { throw StoreCorruption(table: "tokens", column: "token_hash") }
        guard let kind = TokenKind(rawValue: try cells.integer("kind")) else { throw StoreCorruption(table: "tokens", column: "kind") }
        let jkt = try cells.optionalText("cnf_jkt")
        let x5t = try cells.optionalText("cnf_x5t_s256")
        return TokenRecord(
            hash: hash,
            kind: kind,
            clientID: try cells.text("client_id"),
            subject: try cells.optionalText("subject"),
            username: try cells.optionalText("username"),
            scope: try cells.optionalText("scope"),
            audiences: try cells.json([String].self, "audiences"),
            issuer: try cells.text("issuer"),
            issuedAt: try cells.date("issued_at"),
            notBefore: try cells.optionalDate("not_before"),
            expiresAt: try cells.date("expires_at"),
            jti: try cells.text("jti"),
            grantID: try cells.text("grant_id"),
            confirmation: (jkt == nil && x5t == nil) ? nil : Confirmation(jkt: jkt, x5tS256: x5t),
            extra: try cells.json([String: String].self, "extra"),
            revokedAt: try cells.optionalDate("revoked_at"),
            spentAt: try cells.optionalDate("spent_at")
        )
    }

    // MARK: Revocation

    public func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T {
        // BEGIN IMMEDIATE takes the write lock at once: writers are serialised, so seq order is commit order.
        try await transaction { try await body(SQLiteRevocationTransaction(store: self)) }
    }

    public func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry] {
        try await gate.run {
            try await self.select(
                """
                SELECT seq, kind, value, token_hashes, reason, revoked_count, created_at, expires_at FROM revocations
                WHERE seq > ? ORDER BY seq LIMIT ?
                """,
                [.integer(Int(after)), .integer(limit)]
            ).map(Self.revocationEntry)
        }
    }

    private static func revocationEntry(_ row: SQLiteRow) throws -> RevocationEntry {
        let cells = Cells(row, table: "revocations")
        guard let kind = RevocationEntry.Kind(rawValue: try cells.text("kind")) else { throw StoreCorruption(table: "revocations", column: "kind") }
        // Elements that are not 64 hex digits are skipped, as PostgresStore's `HexTokenHashes` does.
        let hashes = try cells.json([String].self, "token_hashes").compactMap(TokenHash.init(hex:))
        return RevocationEntry(
            seq: Int64(try cells.integer("seq")),
            kind: kind,
            value: try cells.text("value"),
            tokenHashes: hashes,
            reason: try cells.text("reason"),
            revokedCount: Int64(try cells.integer("revoked_count")),
            createdAt: try cells.date("created_at"),
            expiresAt: try cells.date("expires_at")
        )
    }

    public func revocationHead() async throws -> Int64 {
        try await gate.run {
            let rows = try await self.select("SELECT COALESCE(MAX(seq), 0) AS head FROM revocations")
            return Int64(try rows.first.map { try Cells($0, table: "revocations").integer("head") } ?? 0)
        }
    }

    public func deleteExpired(before cutoff: Date) async throws -> Int {
        try await transaction {
            let deleted = try await self.select("DELETE FROM tokens WHERE expires_at < ? RETURNING jti", [time(cutoff)]).count
            try await self.execute(
                "DELETE FROM grants WHERE expires_at < ? AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.grant_id = grants.grant_id)",
                [time(cutoff)]
            )
            // The newest entry always stays, so that the log's head (AdminService/Status) never goes back.
            try await self.execute("DELETE FROM revocations WHERE expires_at < ? AND seq < (SELECT MAX(seq) FROM revocations)", [time(cutoff)])
            return deleted
        }
    }

    // MARK: Signing keys

    public func signingKeys() async throws -> [StoredSigningKey] {
        try await gate.run {
            try await self.select(
                """
                SELECT kid, algorithm, private_key, created_at, retires_at FROM signing_keys
                ORDER BY (retires_at IS NULL) DESC, created_at DESC
                """
            ).map { row in
                let cells = Cells(row, table: "signing_keys")
                return StoredSigningKey(
                    kid: try cells.text("kid"),
                    algorithm: try cells.text("algorithm"),
                    privateKey: try cells.bytes("private_key"),
                    createdAt: try cells.date("created_at"),
                    retiresAt: try cells.optionalDate("retires_at")
                )
            }
        }
    }

    public func insertFirstSigningKey(_ key: StoredSigningKey) async throws -> Bool {
        try await gate.run {
            // The partial unique index admits one current key.
            try await !self.select(
                "INSERT INTO signing_keys (kid, algorithm, private_key, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING kid",
                [.text(key.kid), .text(key.algorithm), blob(key.privateKey), time(key.createdAt)]
            ).isEmpty
        }
    }

    public func rotateSigningKey(to key: StoredSigningKey, retiring: Date, audit: AuditEvent?) async throws {
        try await transaction {
            try await self.execute("DELETE FROM signing_keys WHERE retires_at < ?", [time(key.createdAt)])
            try await self.execute("UPDATE signing_keys SET retires_at = ? WHERE retires_at IS NULL", [time(retiring)])
            try await self.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_key, created_at) VALUES (?, ?, ?, ?)",
                [.text(key.kid), .text(key.algorithm), blob(key.privateKey), time(key.createdAt)]
            )
            if let audit { try await self.record(audit) }
        }
    }

    // MARK: Plumbing

    /// Runs `body` inside BEGIN IMMEDIATE … COMMIT with the connection to itself.
    func transaction<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
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

    /// Runs one statement, outside the gate: for use inside `gate.run` or `transaction` (and by
    /// tests that write rows directly).
    func execute(_ sql: String, _ binds: [SQLiteData] = []) async throws {
        try await connection.query(sql, binds) { _ in }
    }

    /// `execute` that returns the rows.
    func select(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let rows = RowCollector()
        try await connection.query(sql, binds) { rows.append($0) }
        return rows.rows
    }
}
