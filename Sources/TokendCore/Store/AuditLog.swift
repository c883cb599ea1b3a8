import Foundation

/// Reads the audit trail. Events are appended only by the write they record (`audit:` of the
/// store's write methods, `RevocationTransaction.record`), in that write's transaction.
public protocol AuditLog: Sendable {
    /// Events with `seq > after`, `at >= since` (when given) and this `actor` (when given), in
    /// `seq` order, at most `limit`.
    func auditEvents(since: Date?, actor: String?, after: Int64, limit: Int) async throws -> [AuditEvent]
}
