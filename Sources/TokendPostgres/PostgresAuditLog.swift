import Foundation
import Logging
import PostgresNIO
import TokendCore

/// The audit trail in PostgreSQL: `audit_events`, appended inside the transaction of the action
/// it records.
extension PostgresStore {
    /// `pg_advisory_xact_lock` key serialising audit appends ("tkdaud" in ASCII): held from the
    /// append to the commit, so `seq` order is commit order and a reader paging by `seq` never
    /// skips an event that committed late. Always the last lock a transaction takes.
    static let auditLockKey: Int64 = 0x746B_6461_7564

    /// Appends `event` inside the caller's transaction on `connection`.
    static func record(_ event: AuditEvent, on connection: PostgresConnection, logger: Logger) async throws {
        let detail = String(decoding: try JSONEncoder().encode(event.detail), as: UTF8.self)
        try await connection.query("SELECT pg_advisory_xact_lock(\(auditLockKey))", logger: logger)
        try await connection.query(
            """
            INSERT INTO audit_events (at, actor, request_id, action, target_kind, target, detail)
            VALUES (\(event.at), \(event.actor), \(event.requestID), \(event.action.rawValue), \(event.targetKind.rawValue),
                \(event.target), \(detail)::jsonb)
            """,
            logger: logger
        )
    }

    public func auditEvents(since: Date?, actor: String?, after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await onConnection { [logger] connection in
            let rows = try await connection.query(
                """
                SELECT seq, at, actor, request_id, action, target_kind, target, detail::text FROM audit_events
                WHERE seq > \(after) AND (\(since)::timestamptz IS NULL OR at >= \(since))
                    AND (\(actor)::text IS NULL OR actor = \(actor))
                ORDER BY seq LIMIT \(Int64(limit))
                """,
                logger: logger
            )
            var events: [AuditEvent] = []
            for try await row in rows {
                let (seq, at, actor, requestID, action, targetKind, target, detail) =
                    try row.decode((Int64, Date, String, String, String, String, String, String).self)
                events.append(
                    try AuditEvent(
                        stored: seq,
                        at: at,
                        actor: actor,
                        requestID: requestID,
                        action: action,
                        targetKind: targetKind,
                        target: target,
                        detail: detail
                    )
                )
            }
            return events
        }
    }
}
