import ArgumentParser
import Foundation
import TokendProto

extension Audit {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List admin actions, oldest first, following the server's pages.",
            discussion: """
                Example:
                  tokenctl audit list --since 1h --actor admin --output json
                With --output json, next_after_seq (non-zero when --limit cut the list short) resumes with --after.
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Events at or after this time: RFC 3339 (2025-01-31T12:00:00Z) or an age (90s, 15m, 1h, 30d).")
        var since: String?
        @Option(help: "Only this actor's events.") var actor: String?
        @Option(help: "Events with a sequence number greater than this.") var after: Int64 = 0
        @Option(help: "At most this many events; 0 for all.") var limit: Int = 1000

        func validate() throws {
            if let since, Self.time(since, now: Date()) == nil {
                throw ValidationError("--since must be an RFC 3339 time or an age such as 1h")
            }
            guard after >= 0 else { throw ValidationError("--after must not be negative") }
            guard limit >= 0 else { throw ValidationError("--limit must not be negative") }
        }

        /// `text` as a time: RFC 3339, or an age (`parseTTL`) before `now`.
        static func time(_ text: String, now: Date) -> Date? {
            if let age = parseTTL(text) { return now.addingTimeInterval(-TimeInterval(age)) }
            for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = options
                if let date = formatter.date(from: text) { return date }
            }
            return nil
        }

        func run() async throws {
            var request = Tokend_V1_ListAuditEventsRequest()
            if let since, let date = Self.time(since, now: Date()) { request.since = max(0, Int64(date.timeIntervalSince1970.rounded(.down))) }
            request.actor = actor ?? ""
            request.afterSeq = after
            var events: [Tokend_V1_AuditEvent] = []
            var next: Int64 = 0
            repeat {
                request.pageSize = Int32(limit == 0 ? 1000 : min(1000, limit - events.count))
                let page: Tokend_V1_ListAuditEventsResponse = try await connection.call("ListAuditEvents", request)
                events += page.events
                next = page.nextAfterSeq
                request.afterSeq = next
            } while next != 0 && (limit == 0 || events.count < limit)
            switch connection.output {
            case .json:
                Output.json([
                    "events": events.map { e in
                        [
                            "seq": e.seq, "at": e.at, "actor": e.actor, "request_id": e.requestID, "action": e.action,
                            "target_kind": e.targetKind, "target": e.target, "detail": e.detail,
                        ] as [String: Any]
                    },
                    "next_after_seq": next,
                ])
            case .table:
                Output.table(
                    ["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "REQUEST_ID", "DETAIL"],
                    events.map { e in
                        let detail = e.detail.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                        return [
                            "\(e.seq)", Output.time(e.at), e.actor, e.action, "\(e.targetKind):\(e.target)", e.requestID,
                            detail.isEmpty ? "-" : detail,
                        ]
                    }
                )
            }
        }
    }
}
