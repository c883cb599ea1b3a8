import Foundation
import Logging

/// The audit trail as the admin API reads it: pages of events in `seq` order.
public struct AuditTrail: Sendable {
    public static let defaultPageSize = 100
    public static let maximumPageSize = 1000
    private let store: any AuditLog
    private let logger: Logger

    public init(store: any AuditLog, logger: Logger = Logger(label: "tokend.audit")) {
        self.store = store
        self.logger = logger
    }

    /// One page: events after `after` (a `seq`; 0 for the first page) recorded at or after `since`
    /// and, when given, by `actor`; `pageSize` 0 means the default, larger than the maximum means
    /// the maximum. `next` is the cursor of the following page, 0 when this one is the last.
    public func page(since: Date?, actor: String?, after: Int64, pageSize: Int) async throws -> (events: [AuditEvent], next: Int64) {
        guard after >= 0, pageSize >= 0 else { throw TokendError.invalidRequest("after_seq and page_size must not be negative") }
        if let actor { try Validation.text(actor, field: "actor") }
        let limit = pageSize == 0 ? Self.defaultPageSize : min(pageSize, Self.maximumPageSize)
        // One more than asked for tells whether another page follows.
        let events = try await storeCall(logger, "reading the audit trail") {
            try await store.auditEvents(since: since, actor: actor, after: after, limit: limit + 1)
        }
        guard events.count > limit else { return (events, 0) }
        let page = Array(events.prefix(limit))
        return (page, page.last?.seq ?? 0)
    }
}

extension AuditEvent {
    /// The structured log line of a committed event (`event=audit` and the event's fields; its
    /// details as `detail_<name>`), written after the commit.
    public func log(to logger: Logger) {
        var metadata: Logger.Metadata = [
            "event": "audit",
            "actor": "\(actor)",
            "request_id": "\(requestID)",
            "action": "\(action.rawValue)",
            "target_kind": "\(targetKind.rawValue)",
            "target": "\(target)",
            "at": "\(at.ISO8601Format(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))",
        ]
        for (name, value) in detail { metadata["detail_" + name] = "\(value)" }
        logger.info("audit", metadata: metadata)
    }
}
