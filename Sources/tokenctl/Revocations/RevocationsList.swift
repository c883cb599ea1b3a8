import ArgumentParser
import TokendProto

extension Revocations {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List revocation log entries after a sequence number.",
            discussion: "Example:\n  tokenctl revocations list --since 100 --limit 20 --output json"
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Entries with a sequence number greater than this.") var since: Int64 = 0
        @Option(help: "At most this many entries (1-1000).") var limit: Int32 = 100

        func validate() throws {
            guard since >= 0 else { throw ValidationError("--since must not be negative") }
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000") }
        }

        func run() async throws {
            var request = Tokend_V1_ListRevocationsRequest()
            request.since = since
            request.limit = limit
            let r: Tokend_V1_ListRevocationsResponse = try await connection.call("ListRevocations", request)
            switch connection.output {
            case .json:
                Output.json([
                    "head": r.head,
                    "entries": r.entries.map { e in
                        ["seq": e.seq, "kind": e.kind, "value": e.value, "reason": e.reason, "revoked": e.revoked, "created_at": e.createdAt]
                            as [String: Any]
                    },
                ])
            case .table:
                Output.table(
                    ["SEQ", "KIND", "VALUE", "REVOKED", "CREATED", "REASON"],
                    r.entries.map { e in
                        ["\(e.seq)", e.kind, e.value, "\(e.revoked)", Output.time(e.createdAt), e.reason.isEmpty ? "-" : e.reason]
                    }
                )
            }
        }
    }
}
