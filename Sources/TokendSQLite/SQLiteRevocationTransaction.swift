import Foundation
import SQLiteNIO
import TokendCore

#if canImport(Glibc)
import Glibc
#endif

/// The revocation primitives inside one `SQLiteStore.transaction` (which holds the gate).
struct SQLiteRevocationTransaction: RevocationTransaction {
    let store: SQLiteStore

    // No row locks needed: BEGIN IMMEDIATE has made this the only writer.
    func token(hash: TokenHash) async throws -> TokenRecord? {
        try await store.select("SELECT \(SQLiteStore.tokenColumns) FROM tokens WHERE token_hash = ?", [blob(hash.bytes)])
            .first.map(SQLiteStore.tokenRecord)
    }

    func token(jti: String) async throws -> TokenRecord? {
        try await store.select("SELECT \(SQLiteStore.tokenColumns) FROM tokens WHERE jti = ?", [.text(jti)]).first.map(SQLiteStore.tokenRecord)
    }

    func markRevoked(_ match: TokenMatch, at now: Date) async throws -> [RevokedToken] {
        let set = "UPDATE tokens SET revoked_at = ?"
        let returning = "AND revoked_at IS NULL RETURNING token_hash, expires_at"
        let rows: [SQLiteRow]
        switch match {
        case .hash(let hash):
            rows = try await store.select("\(set) WHERE token_hash = ? \(returning)", [time(now), blob(hash.bytes)])
        case .subject(let subject):
            rows = try await store.select("\(set) WHERE subject = ? \(returning)", [time(now), .text(subject)])
        case .client(let clientID):
            rows = try await store.select("\(set) WHERE client_id = ? \(returning)", [time(now), .text(clientID)])
        case .grant(let grantID):
            try await store.execute("UPDATE grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL", [time(now), .text(grantID)])
            rows = try await store.select("\(set) WHERE grant_id = ? \(returning)", [time(now), .text(grantID)])
        }
        return try rows.map { row in
            let cells = Cells(row, table: "tokens")
            guard let hash = TokenHash(validating: try cells.bytes("token_hash")) else {
                throw StoreCorruption(table: "tokens", column: "token_hash")
            }
            return RevokedToken(hash: hash, expiresAt: try cells.date("expires_at"))
        }
    }

    func append(_ entry: NewRevocationEntry) async throws -> Int64 {
        let rows = try await store.select(
            """
            INSERT INTO revocations (kind, value, token_hashes, reason, revoked_count, created_at, expires_at)
            VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq
            """,
            [
                .text(entry.kind.rawValue), .text(entry.value), .text(json(entry.tokenHashes.map(\.hex))), .text(entry.reason),
                .integer(Int(entry.revokedCount)), time(entry.createdAt), time(entry.expiresAt),
            ]
        )
        guard let row = rows.first else { throw StoreCorruption(table: "revocations", column: "seq") }
        return Int64(try Cells(row, table: "revocations").integer("seq"))
    }

    func markSpent(_ hash: TokenHash, at now: Date) async throws {
        try await store.execute("UPDATE tokens SET spent_at = ? WHERE token_hash = ? AND spent_at IS NULL", [time(now), blob(hash.bytes)])
    }

    func insertTokens(_ tokens: [TokenRecord]) async throws {
        try await store.insert(tokens)
    }

    func grantAccessTTL(_ grantID: String) async throws -> Int64? {
        let rows = try await store.select("SELECT access_ttl FROM grants WHERE grant_id = ?", [.text(grantID)])
        guard let row = rows.first, let cell = row.column("access_ttl") else { return nil }
        if case .integer(let seconds) = cell { return Int64(seconds) }
        return nil
    }

    func record(_ event: AuditEvent) async throws { try await store.record(event) }
}
