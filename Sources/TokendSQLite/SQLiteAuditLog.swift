import Foundation
import SQLiteNIO
import TokendCore

/// The audit trail in the embedded store: `audit_events`, appended inside the transaction of the
/// action it records (BEGIN IMMEDIATE makes it the only writer, so `seq` order is commit order).
extension SQLiteStore {
    /// Appends `event`; for use inside `transaction`.
    func record(_ event: AuditEvent) async throws {
        try await execute(
            "INSERT INTO audit_events (at, actor, request_id, action, target_kind, target, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                time(event.at), .text(event.actor), .text(event.requestID), .text(event.action.rawValue), .text(event.targetKind.rawValue),
                .text(event.target), .text(jsonObject(event.detail)),
            ]
        )
    }

    /// Runs `write` (which answers whether it took effect) and appends `audit` when it did, in one
    /// transaction.
    func audited(_ audit: AuditEvent?, _ write: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
        try await transaction {
            let done = try await write()
            if done, let audit { try await self.record(audit) }
            return done
        }
    }

    public func auditEvents(since: Date?, actor: String?, after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await gate.run {
            try await self.select(
                """
                SELECT seq, at, actor, request_id, action, target_kind, target, detail FROM audit_events
                WHERE seq > ? AND (? IS NULL OR at >= ?) AND (? IS NULL OR actor = ?)
                ORDER BY seq LIMIT ?
                """,
                [
                    .integer(Int(after)), since.map(time) ?? .null, since.map(time) ?? .null, optional(actor), optional(actor),
                    .integer(limit),
                ]
            ).map { row in
                let cells = Cells(row, table: "audit_events")
                return try AuditEvent(
                    stored: Int64(try cells.integer("seq")),
                    at: try cells.date("at"),
                    actor: try cells.text("actor"),
                    requestID: try cells.text("request_id"),
                    action: try cells.text("action"),
                    targetKind: try cells.text("target_kind"),
                    target: try cells.text("target"),
                    detail: try cells.text("detail")
                )
            }
        }
    }
}
