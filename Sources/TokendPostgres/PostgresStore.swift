import Foundation
import Logging
import PostgresNIO
import TokendCore

/// The PostgreSQL store: clients, grants, tokens (keyed by hash) and the revocation log.
///
/// Every value reaches SQL as a bound parameter through `PostgresQuery` interpolation.
public struct PostgresStore: TokendStore, StorePoolReporting {
    public static let notificationChannel = "tokend_revocations"
    /// `pg_advisory_xact_lock` key serialising revocation log appends ("tkdlog" in ASCII).
    static let logLockKey: Int64 = 0x746B_646C_6F67
    public let name = "postgres"
    public let client: PostgresClient
    let logger: Logger
    private let lookups: LookupBatcher<TokenHash, TokenRecord>
    private let pool: PostgresPoolObserver?

    /// Whether `client` goes through a transaction pooler (`DatabaseURL.transactionPooler`).
    public let transactionPooler: Bool

    /// `maxConcurrentLookups`: how many `token(hash:)` lookups may be in flight at once; concurrent
    /// lookups beyond that are coalesced into `token_hash = ANY($1)` batches (see `LookupBatcher`).
    /// Batches a caller made itself (`tokens(hashes:)`: the HTTP fast path's, 1 or 2 at a time)
    /// run beside them.
    /// `pool`: the observer given to `client` as its background logger, for `poolFigures`.
    /// `transactionPooler`: `client` connects through a pooler in transaction mode
    /// (`pooler=transaction`): the token lookup then runs as an unnamed statement, like every other
    /// statement here, instead of the named prepared statement a direct connection keeps.
    public init(
        client: PostgresClient,
        logger: Logger,
        maxConcurrentLookups: Int = 2,
        pool: PostgresPoolObserver? = nil,
        transactionPooler: Bool = false
    ) {
        self.client = client
        self.logger = logger
        self.pool = pool
        self.transactionPooler = transactionPooler
        self.lookups = LookupBatcher(maxConcurrentBatches: maxConcurrentLookups, maxBatchSize: 256) { [client, logger] hashes in
            try await Self.fetchTokens(hashes, client: client, logger: logger, named: !transactionPooler)
        }
    }

    /// The pool's connections (when observed) and the coalesced lookups.
    public var poolFigures: StorePoolFigures {
        let (batches, keys) = lookups.figures
        return (pool ?? PostgresPoolObserver(maxConnections: 0)).figures(batches: batches, keys: keys, sizes: lookups.batchSizes)
    }

    /// Counts a batch of `keys` keys read beside this store (`PostgresBatchReader`) in `poolFigures`.
    var countBatch: @Sendable (Int) -> Void { { [lookups] keys in lookups.count(keys) } }

    public func ping() async throws {
        try await onConnection { [logger] connection in
            for try await _ in try await connection.query("SELECT 1", logger: logger) {}
        }
    }

    // MARK: Connections

    /// Runs `body` on a pooled connection that is closed if the calling task is cancelled.
    ///
    /// A query on a connection whose server stopped answering (a stopped or blackholed database:
    /// the socket stays open, nothing answers) waits forever, and postgres-nio does not give it up
    /// on cancellation. `TimeLimitedStore` answers its caller at the deadline regardless and cancels
    /// the call; closing the connection here then fails the query, ends the call, and makes the
    /// pool replace the connection instead of lending it out again.
    ///
    /// A query written to a connection that has already closed is never answered at all in
    /// postgres-nio 1.33.2 (the fix, vapor/postgres-nio#487, was reverted in #501): closed by that
    /// cancellation before `body`'s next query, or closed by the server while idle in the pool.
    /// `ClosedConnectionTests` shows it. So `body` runs in a task of its own that the cancellation
    /// abandons, and the caller goes on. Before, such a body kept its lease, and a token lookup kept
    /// its `LookupBatcher` slot, for good: a replica in the fault-injection test answered 503 to
    /// every lookup once both slots were lost.
    ///
    /// The lease goes back to the pool only once the connection has closed. The pool learns of a
    /// close from the connection's `closeFuture`, so a lease returned before that would make the
    /// closing connection available to the next caller, whose query would then never be answered.
    /// A body abandoned between two of its queries may still write the second to the closed
    /// connection; its task then never ends (no lease, no slot: one task's memory).
    /// `inTransaction` does not write a `ROLLBACK` to a closed connection for the same reason.
    func onConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await Self.onConnection(client, body)
    }

    static func onConnection<T: Sendable>(
        _ client: PostgresClient,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await client.withConnection { connection in
            do {
                return try await abandonedOnCancel {
                    try await body(connection)
                } onCancel: {
                    // Not awaited here: closing the channel is what fails a query stuck on a dead
                    // socket. It is awaited below, before the lease goes back.
                    let closing: EventLoopFuture<Void> = connection.close()
                    _ = closing
                }
            } catch {
                // Cancelled (the close above may not have begun on the event loop yet), or closed
                // by the server: wait for `closeFuture`. The pool's own close callback, registered
                // first, has then run, so releasing the lease below drops the connection instead
                // of lending it out again.
                if error is CancellationError || connection.isClosed {
                    let closing: EventLoopFuture<Void> = connection.close()
                    _ = closing
                    try? await connection.closeFuture.get()
                }
                throw error
            }
        }
    }

    /// `onConnection` inside a transaction (committed when `body` returns, rolled back when it
    /// throws). A body that threw is answered with its own error, as SQLite's transactions do.
    ///
    /// postgres-nio's `withTransaction` writes `ROLLBACK` after a failed body even when the
    /// connection has closed (a cancelled call: `onConnection` closes it), and such a query is
    /// never answered, so the abandoned body's task would never end. This one rolls back only on
    /// an open connection; on a closed one the server has rolled back already.
    func inTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await onConnection { [logger] connection in
            try await Self.transaction(on: connection, logger: logger, body)
        }
    }

    static func transaction<T: Sendable>(
        on connection: PostgresConnection,
        logger: Logger,
        _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await connection.query("BEGIN", logger: logger)
        let value: T
        do {
            value = try await body(connection)
        } catch {
            if !connection.isClosed { _ = try? await connection.query("ROLLBACK", logger: logger) }
            throw error
        }
        try await connection.query("COMMIT", logger: logger)
        return value
    }

    /// Runs `write` (which answers whether it took effect) and appends `audit` when it did, in one
    /// transaction.
    private func audited(_ audit: AuditEvent?, _ write: @escaping @Sendable (PostgresConnection) async throws -> Bool) async throws -> Bool {
        try await inTransaction { [logger] connection in
            let done = try await write(connection)
            if done, let audit { try await Self.record(audit, on: connection, logger: logger) }
            return done
        }
    }

    // MARK: Clients

    public func createClient(_ c: ClientRecord, audit: AuditEvent?) async throws {
        do {
            _ = try await audited(audit) { [logger] connection in
                try await connection.query(
                    """
                    INSERT INTO clients (client_id, roles, audiences, scopes, secret_salt, secret_hash, created_at, updated_at)
                    VALUES (\(c.id), \(c.sortedRoles), \(c.audiences), \(c.scopes), \(Data(c.secretSalt)), \(Data(c.secretHash)),
                        \(c.createdAt), \(c.createdAt))
                    """,
                    logger: logger
                )
                return true
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw TokendError.alreadyExists("client \"\(c.id)\" exists already")
        }
    }

    public func client(id: String) async throws -> ClientRecord? {
        try await onConnection { [logger] connection in
            let rows = try await connection.query(
                "SELECT client_id, roles, audiences, scopes, secret_salt, secret_hash, created_at FROM clients WHERE client_id = \(id)",
                logger: logger
            )
            for try await row in rows { return try Self.clientRecord(row) }
            return nil
        }
    }

    public func listClients() async throws -> [ClientRecord] {
        try await onConnection { [logger] connection in
            let rows = try await connection.query(
                "SELECT client_id, roles, audiences, scopes, secret_salt, secret_hash, created_at FROM clients ORDER BY client_id",
                logger: logger
            )
            var result: [ClientRecord] = []
            for try await row in rows { result.append(try Self.clientRecord(row)) }
            return result
        }
    }

    public func deleteClient(id: String, audit: AuditEvent?) async throws -> Bool {
        try await audited(audit) { [logger] connection in
            let rows = try await connection.query("DELETE FROM clients WHERE client_id = \(id) RETURNING client_id", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    public func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8], audit: AuditEvent?) async throws -> Bool {
        try await audited(audit) { [logger] connection in
            let rows = try await connection.query(
                """
                UPDATE clients SET secret_salt = \(Data(salt)), secret_hash = \(Data(hash)), updated_at = now()
                WHERE client_id = \(id) RETURNING client_id
                """,
                logger: logger
            )
            for try await _ in rows { return true }
            return false
        }
    }

    public func updateClient(_ c: ClientRecord, audit: AuditEvent?) async throws -> Bool {
        try await audited(audit) { [logger] connection in
            let rows = try await connection.query(
                """
                UPDATE clients SET roles = \(c.sortedRoles), audiences = \(c.audiences), scopes = \(c.scopes), updated_at = now()
                WHERE client_id = \(c.id) RETURNING client_id
                """,
                logger: logger
            )
            for try await _ in rows { return true }
            return false
        }
    }

    private static func clientRecord(_ row: PostgresRow) throws -> ClientRecord {
        let (id, roles, audiences, scopes, salt, hash, createdAt) = try row.decode((String, [String], [String], [String], Data, Data, Date).self)
        let known = try roles.map { name in
            guard let role = Role(rawValue: name) else { throw StoreCorruption(table: "clients", column: "roles") }
            return role
        }
        return ClientRecord(
            id: id,
            roles: Set(known),
            audiences: audiences,
            scopes: scopes,
            secretSalt: Array(salt),
            secretHash: Array(hash),
            createdAt: createdAt
        )
    }

    // MARK: Tokens

    public func insertTokens(_ tokens: [TokenRecord], audit: AuditEvent?) async throws {
        try await inTransaction { [logger] connection in
            try await Self.insert(tokens, on: connection, logger: logger)
            if let audit { try await Self.record(audit, on: connection, logger: logger) }
        }
    }

    /// Inserts tokens and their grant (created, or its expiry extended), inside the caller's
    /// transaction. A new grant keeps the lifetime of its access token, for redemptions.
    static func insert(_ tokens: [TokenRecord], on connection: PostgresConnection, logger: Logger) async throws {
        guard let first = tokens.first else { return }
        let expiresAt = tokens.map(\.expiresAt).max() ?? first.expiresAt
        let accessTTL = tokens.first { $0.kind == .access }.map { Int64($0.expiresAt.timeIntervalSince($0.issuedAt)) }
        try await connection.query(
            """
            INSERT INTO grants (grant_id, client_id, subject, created_at, expires_at, access_ttl)
            VALUES (\(first.grantID), \(first.clientID), \(first.subject), \(first.issuedAt), \(expiresAt), \(accessTTL))
            ON CONFLICT (grant_id) DO UPDATE SET expires_at = GREATEST(grants.expires_at, EXCLUDED.expires_at)
            """,
            logger: logger
        )
        for t in tokens {
            let extra = String(decoding: try JSONEncoder().encode(t.extra), as: UTF8.self)
            try await connection.query(
                """
                INSERT INTO tokens (token_hash, kind, client_id, subject, username, scope, audiences, issuer,
                    issued_at, not_before, expires_at, jti, grant_id, cnf_jkt, cnf_x5t_s256, extra)
                VALUES (\(Data(t.hash.bytes)), \(Int16(t.kind.rawValue)), \(t.clientID), \(t.subject), \(t.username),
                    \(t.scope), \(t.audiences), \(t.issuer), \(t.issuedAt), \(t.notBefore), \(t.expiresAt), \(t.jti),
                    \(t.grantID), \(t.confirmation?.jkt), \(t.confirmation?.x5tS256), \(extra)::jsonb)
                """,
                logger: logger
            )
        }
    }

    /// The columns `tokenRecord` reads, in order. A constant: the only text this file interpolates
    /// into SQL `unescaped:` (a column list cannot be a bound parameter).
    static let tokenColumns = """
        token_hash, kind, client_id, subject, username, scope, audiences, issuer, issued_at, not_before,
        expires_at, jti, grant_id, cnf_jkt, cnf_x5t_s256, extra::text, revoked_at, spent_at
        """

    public func token(hash: TokenHash) async throws -> TokenRecord? {
        try await lookups.get(hash)
    }

    /// One `= ANY($1)` query for a batch the caller made itself, counted with the coalesced
    /// lookups' (`poolFigures`) but outside their slots.
    public func tokens(hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord] {
        try await lookups.fetchBatch(Array(Set(hashes)))
    }

    /// One prepared statement for any number of hashes. Named: postgres-nio prepares it once per
    /// connection (Parse, then Bind/Execute in a later round trip), which only a session holds.
    struct TokensByHash: PostgresPreparedStatement {
        static let sql = "SELECT \(PostgresStore.tokenColumns) FROM tokens WHERE token_hash = ANY($1)"
        typealias Row = TokenRecord
        var hashes: [ByteBuffer]

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(hashes)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> TokenRecord { try PostgresStore.tokenRecord(row) }
    }

    /// The records of `hashes`, through `TokensByHash` when `named`, else the same SQL as an
    /// unnamed statement: `query` sends Parse, Bind and Execute of the unnamed statement with one
    /// Sync, so a transaction pooler runs all of it on one server connection.
    private static func fetchTokens(
        _ hashes: [TokenHash],
        client: PostgresClient,
        logger: Logger,
        named: Bool
    ) async throws -> [TokenHash: TokenRecord] {
        let bound = hashes.map { ByteBuffer(bytes: $0.bytes) }
        return try await onConnection(client) { connection in
            var records: [TokenHash: TokenRecord] = [:]
            records.reserveCapacity(hashes.count)
            if named {
                for try await record in try await connection.execute(TokensByHash(hashes: bound), logger: logger) {
                    records[record.hash] = record
                }
            } else {
                let rows = try await connection.query(
                    // `unescaped:` is safe: `tokenColumns` is a constant of this file, never input.
                    "SELECT \(unescaped: Self.tokenColumns) FROM tokens WHERE token_hash = ANY(\(bound))",
                    logger: logger
                )
                for try await row in rows {
                    let record = try Self.tokenRecord(row)
                    records[record.hash] = record
                }
            }
            return records
        }
    }

    public func token(jti: String) async throws -> TokenRecord? {
        try await onConnection { [logger] connection in
            let rows = try await connection.query(
                // `unescaped:` is safe: `tokenColumns` is a constant of this file, never input.
                "SELECT \(unescaped: Self.tokenColumns) FROM tokens WHERE jti = \(jti)",
                logger: logger
            )
            for try await row in rows { return try Self.tokenRecord(row) }
            return nil
        }
    }

    /// One `tokens` row (`tokenColumns`), through `RowCells`. `extra` is `{}` for most tokens and
    /// then skips JSONDecoder. A value tokend never writes throws `StoreCorruption`.
    static func tokenRecord(_ row: PostgresRow) throws -> TokenRecord {
        var cells = RowCells(row)
        let hash = try cells.next(ByteBuffer.self)
        let kind = try cells.next(Int16.self)
        let clientID = try cells.next(String.self)
        let subject = try cells.next(String?.self)
        let username = try cells.next(String?.self)
        let scope = try cells.next(String?.self)
        let audiences = try cells.next([String].self)
        let issuer = try cells.next(String.self)
        let issuedAt = try cells.next(Date.self)
        let notBefore = try cells.next(Date?.self)
        let expiresAt = try cells.next(Date.self)
        let jti = try cells.next(String.self)
        let grantID = try cells.next(String.self)
        let jkt = try cells.next(String?.self)
        let x5t = try cells.next(String?.self)
        let extra = try cells.next(String.self)
        let revokedAt = try cells.next(Date?.self)
        let spentAt = try cells.next(Date?.self)
        let confirmation = (jkt == nil && x5t == nil) ? nil : Confirmation(jkt: jkt, x5tS256: x5t)
        guard let hash = TokenHash(validating: Array(hash.readableBytesView)) else { throw StoreCorruption(table: "tokens", column: "token_hash") }
        guard let kind = TokenKind(rawValue: Int(kind)) else { throw StoreCorruption(table: "tokens", column: "kind") }
        return TokenRecord(
            hash: hash,
            kind: kind,
            clientID: clientID,
            subject: subject,
            username: username,
            scope: scope,
            audiences: audiences,
            issuer: issuer,
            issuedAt: issuedAt,
            notBefore: notBefore,
            expiresAt: expiresAt,
            jti: jti,
            grantID: grantID,
            confirmation: confirmation,
            extra: try extraClaims(extra),
            revokedAt: revokedAt,
            spentAt: spentAt
        )
    }

    /// The `extra` column: a JSON object of strings.
    private static func extraClaims(_ json: String) throws -> [String: String] {
        if json == "{}" { return [:] }
        do {
            return try JSONDecoder().decode([String: String].self, from: Data(json.utf8))
        } catch {
            throw StoreCorruption(table: "tokens", column: "extra")
        }
    }

    // MARK: Revocation

    public func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T {
        try await inTransaction { [logger] connection in
            try await body(PostgresRevocationTransaction(connection: connection, logger: logger))
        }
    }

    public func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry] {
        try await onConnection { [logger] connection in
            try await Self.revocations(after: after, limit: limit, on: connection, logger: logger)
        }
    }

    static func revocations(after: Int64, limit: Int, on connection: PostgresConnection, logger: Logger) async throws -> [RevocationEntry] {
        let rows = try await connection.query(
            """
            SELECT seq, kind, value, token_hashes, reason, revoked_count, created_at, expires_at FROM revocations
            WHERE seq > \(after) ORDER BY seq LIMIT \(Int64(limit))
            """,
            logger: logger
        )
        var entries: [RevocationEntry] = []
        entries.reserveCapacity(min(limit, 10_000))
        for try await row in rows { entries.append(try Self.revocationEntry(row)) }
        return entries
    }

    /// One `revocations` row, through `RowCells` (at a cold start over 1,000,000 entries a tuple
    /// decode cost more than the decoding itself).
    static func revocationEntry(_ row: PostgresRow) throws -> RevocationEntry {
        var cells = RowCells(row)
        let seq = try cells.next(Int64.self)
        let kind = try cells.next(String.self)
        let value = try cells.next(String.self)
        let hashes = try cells.next(HexTokenHashes.self)
        let reason = try cells.next(String.self)
        let count = try cells.next(Int64.self)
        let createdAt = try cells.next(Date.self)
        let expiresAt = try cells.next(Date.self)
        guard let kind = RevocationEntry.Kind(rawValue: kind) else { throw StoreCorruption(table: "revocations", column: "kind") }
        return RevocationEntry(
            seq: seq,
            kind: kind,
            value: value,
            tokenHashes: hashes.hashes,
            reason: reason,
            revokedCount: count,
            createdAt: createdAt,
            expiresAt: expiresAt
        )
    }

    public func revocationHead() async throws -> Int64 {
        try await onConnection { [logger] connection in
            let rows = try await connection.query("SELECT COALESCE(MAX(seq), 0) FROM revocations", logger: logger)
            for try await row in rows { return try row.decode(Int64.self) }
            return 0
        }
    }

    public func deleteExpired(before cutoff: Date) async throws -> Int {
        try await inTransaction { [logger] connection in
            let rows = try await connection.query("DELETE FROM tokens WHERE expires_at < \(cutoff) RETURNING 1", logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            try await connection.query(
                "DELETE FROM grants g WHERE g.expires_at < \(cutoff) AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.grant_id = g.grant_id)",
                logger: logger
            )
            // The newest entry always stays, so that the log's head (AdminService/Status) never goes back.
            try await connection.query(
                "DELETE FROM revocations WHERE expires_at < \(cutoff) AND seq < (SELECT MAX(seq) FROM revocations)",
                logger: logger
            )
            return count
        }
    }

    // MARK: Signing keys

    /// `pg_advisory_xact_lock` key serialising key rotations ("tkdkey" in ASCII).
    static let keyLockKey: Int64 = 0x746B_646B_6579

    public func signingKeys() async throws -> [StoredSigningKey] {
        try await onConnection { [logger] connection in
            let rows = try await connection.query(
                """
                SELECT kid, algorithm, private_key, created_at, retires_at FROM signing_keys
                ORDER BY (retires_at IS NULL) DESC, created_at DESC
                """,
                logger: logger
            )
            var keys: [StoredSigningKey] = []
            for try await row in rows {
                let (kid, algorithm, key, createdAt, retiresAt) = try row.decode((String, String, Data, Date, Date?).self)
                keys.append(StoredSigningKey(kid: kid, algorithm: algorithm, privateKey: Array(key), createdAt: createdAt, retiresAt: retiresAt))
            }
            return keys
        }
    }

    public func insertFirstSigningKey(_ key: StoredSigningKey) async throws -> Bool {
        try await inTransaction { [logger] connection in
            // The partial unique index admits one current key: a concurrent first start waits for
            // this one's commit, then inserts nothing.
            let rows = try await connection.query(
                """
                INSERT INTO signing_keys (kid, algorithm, private_key, created_at)
                VALUES (\(key.kid), \(key.algorithm), \(Data(key.privateKey)), \(key.createdAt))
                ON CONFLICT DO NOTHING RETURNING kid
                """,
                logger: logger
            )
            var inserted = false
            for try await _ in rows { inserted = true }
            if inserted { try await connection.query("SELECT pg_notify(\(Self.notificationChannel), 'keys')", logger: logger) }
            return inserted
        }
    }

    public func rotateSigningKey(to key: StoredSigningKey, retiring: Date, audit: AuditEvent?) async throws {
        try await inTransaction { [logger] connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.keyLockKey))", logger: logger)
            try await connection.query("DELETE FROM signing_keys WHERE retires_at < \(key.createdAt)", logger: logger)
            try await connection.query("UPDATE signing_keys SET retires_at = \(retiring) WHERE retires_at IS NULL", logger: logger)
            try await connection.query(
                """
                INSERT INTO signing_keys (kid, algorithm, private_key, created_at)
                VALUES (\(key.kid), \(key.algorithm), \(Data(key.privateKey)), \(key.createdAt))
                """,
                logger: logger
            )
            // Delivered at commit: every replica's listener reloads the keys.
            try await connection.query("SELECT pg_notify(\(Self.notificationChannel), 'keys')", logger: logger)
            if let audit { try await Self.record(audit, on: connection, logger: logger) }
        }
    }
}
