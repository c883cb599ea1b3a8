import Foundation
import Logging
import PostgresNIO
import TokendCore

/// The revocation primitives on the connection of one `PostgresClient.withTransaction`.
struct PostgresRevocationTransaction: RevocationTransaction {
    let connection: PostgresConnection
    let logger: Logger

    // `unescaped:` is safe in both lookups: `tokenColumns` is a constant, never input.
    func token(hash: TokenHash) async throws -> TokenRecord? {
        try await first(
            connection.query(
                "SELECT \(unescaped: PostgresStore.tokenColumns) FROM tokens WHERE token_hash = \(Data(hash.bytes)) FOR UPDATE",
                logger: logger
            )
        )
    }

    func token(jti: String) async throws -> TokenRecord? {
        try await first(
            connection.query(
                "SELECT \(unescaped: PostgresStore.tokenColumns) FROM tokens WHERE jti = \(jti) FOR UPDATE",
                logger: logger
            )
        )
    }

    private func first(_ rows: PostgresRowSequence) async throws -> TokenRecord? {
        for try await row in rows { return try PostgresStore.tokenRecord(row) }
        return nil
    }

    func markRevoked(_ match: TokenMatch, at time: Date) async throws -> [RevokedToken] {
        let rows: PostgresRowSequence
        switch match {
        case .hash(let hash):
            rows = try await connection.query(
                """
                UPDATE tokens SET revoked_at = \(time) WHERE token_hash = \(Data(hash.bytes)) AND revoked_at IS NULL
                RETURNING token_hash, expires_at
                """,
                logger: logger
            )
        case .subject(let subject):
            rows = try await connection.query(
                "UPDATE tokens SET revoked_at = \(time) WHERE subject = \(subject) AND revoked_at IS NULL RETURNING token_hash, expires_at",
                logger: logger
            )
        case .client(let clientID):
            rows = try await connection.query(
                "UPDATE tokens SET revoked_at = \(time) WHERE client_id = \(clientID) AND revoked_at IS NULL RETURNING token_hash, expires_at",
                logger: logger
            )
        case .grant(let grantID):
            try await connection.query("UPDATE grants SET revoked_at = \(time) WHERE grant_id = \(grantID) AND revoked_at IS NULL", logger: logger)
            rows = try await connection.query(
                "UPDATE tokens SET revoked_at = \(time) WHERE grant_id = \(grantID) AND revoked_at IS NULL RETURNING token_hash, expires_at",
                logger: logger
            )
        }
        var revoked: [RevokedToken] = []
        for try await row in rows {
            let (hash, expiresAt) = try row.decode((Data, Date).self)
            guard let hash = TokenHash(validating: Array(hash)) else { throw StoreCorruption(table: "tokens", column: "token_hash") }
            revoked.append(RevokedToken(hash: hash, expiresAt: expiresAt))
        }
        return revoked
    }

    func append(_ entry: NewRevocationEntry) async throws -> Int64 {
        // A transaction-scoped lock taken before the seq is drawn and held until commit: seq order
        // is commit order, so a reader that sees seq N has seen, or will never see, every smaller
        // seq. Only this last step of a revocation is serialised.
        try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresStore.logLockKey))", logger: logger)
        let rows = try await connection.query(
            """
            INSERT INTO revocations (kind, value, token_hashes, reason, revoked_count, created_at, expires_at)
            VALUES (\(entry.kind.rawValue), \(entry.value), \(entry.tokenHashes.map(\.hex)), \(entry.reason), \(entry.revokedCount),
                \(entry.createdAt), \(entry.expiresAt))
            RETURNING seq
            """,
            logger: logger
        )
        var seq: Int64?
        for try await row in rows { seq = try row.decode(Int64.self) }
        guard let seq else { throw PostgresDecodingError.Code.missingData }
        // A wake-up for every replica's revocation feed; delivered at commit. The log is the truth.
        try await connection.query("SELECT pg_notify(\(PostgresStore.notificationChannel), \(String(seq)))", logger: logger)
        return seq
    }

    func markSpent(_ hash: TokenHash, at time: Date) async throws {
        try await connection.query(
            "UPDATE tokens SET spent_at = \(time) WHERE token_hash = \(Data(hash.bytes)) AND spent_at IS NULL",
            logger: logger
        )
    }

    func insertTokens(_ tokens: [TokenRecord]) async throws {
        try await PostgresStore.insert(tokens, on: connection, logger: logger)
    }

    func grantAccessTTL(_ grantID: String) async throws -> Int64? {
        let rows = try await connection.query("SELECT access_ttl FROM grants WHERE grant_id = \(grantID)", logger: logger)
        for try await row in rows { return try row.decode(Int64?.self) }
        return nil
    }

    func record(_ event: AuditEvent) async throws {
        try await PostgresStore.record(event, on: connection, logger: logger)
    }
}
