import Foundation
import Logging
import PostgresNIO
import TokendCore

/// A hot standby of the primary (or a pooler in front of standbys), for token lookups and the
/// revocation log's tail (`TOKEND_READ_DATABASE_URL`). NOTIFY never reaches a standby: the log is
/// polled (`Standby`, `RevocationFeed`).
public struct PostgresStandbyReads: StandbyReads {
    /// The standby's pool, as a store: its coalesced token lookups and its log reads.
    let standby: PostgresStore
    /// The primary's pool, for its WAL position.
    let primary: PostgresClient
    let logger: Logger

    public init(standby: PostgresStore, primary: PostgresClient, logger: Logger) {
        self.standby = standby
        self.primary = primary
        self.logger = logger
    }

    public func token(hash: TokenHash) async throws -> TokenRecord? {
        try await standby.token(hash: hash)
    }

    /// One transaction, so that behind a pooler both statements reach the same server: the
    /// position it has replayed first, then the log under a snapshot taken after it (READ
    /// COMMITTED takes one per statement), which therefore holds every transaction at or below
    /// that position. A server that is not in recovery (the read URL names a primary) reports its
    /// own write position, which is just as true.
    public func revocations(after: Int64, limit: Int) async throws -> (entries: [RevocationEntry], replayed: Int64?) {
        try await standby.inTransaction { [logger] connection in
            var replayed: Int64?
            let rows = try await connection.query(
                """
                SELECT ((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)
                    - '0/0'::pg_lsn)::int8
                """,
                logger: logger
            )
            for try await row in rows { replayed = try row.decode(Int64?.self) }
            let entries = try await PostgresStore.revocations(after: after, limit: limit, on: connection, logger: logger)
            return (entries, replayed)
        }
    }

    public func primaryPosition() async throws -> Int64 {
        try await PostgresStore.onConnection(primary) { [logger] connection in
            let rows = try await connection.query("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", logger: logger)
            for try await row in rows { return try row.decode(Int64.self) }
            throw StoreCorruption(table: "pg_current_wal_lsn()", column: "position")
        }
    }
}
