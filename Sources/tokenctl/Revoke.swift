import ArgumentParser
import Foundation
import TokendProto

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke tokens by exactly one selector.",
        discussion: """
            --subject and --client revoke every token of theirs issued up to now; later ones stay valid.
            Revoking a refresh token revokes its whole grant.
            Examples:
              tokenctl revoke --token tkd_at_... --reason "leaked in a log"
              echo "$TOKEN" | tokenctl revoke --token -
              tokenctl revoke --subject alice --reason "password reset" --output json
            """
    )
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "A token, or - to read it from standard input.") var token: String?
    @Option(help: "A token's jti.") var jti: String?
    @Option(help: "Every token of this subject issued so far.") var subject: String?
    @Option(help: "Every token issued to this client so far.") var client: String?
    @Option(help: "Every token of this grant.") var grant: String?
    @Option(help: "Why; kept in the revocation log.") var reason: String = ""

    func validate() throws {
        let given = [token, jti, subject, client, grant].compactMap { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --token, --jti, --subject, --client, --grant") }
    }

    func run() async throws {
        var request = Tokend_V1_AdminRevokeRequest()
        if let token { request.token = try resolveToken(token) }
        if let jti { request.jti = jti }
        if let subject { request.subject = subject }
        if let client { request.clientID = client }
        if let grant { request.grantID = grant }
        request.reason = reason
        let r: Tokend_V1_AdminRevokeResponse = try await connection.call("Revoke", request)
        switch connection.output {
        case .json: Output.json(["revoked": r.revoked, "seq": r.seq])
        case .table: Output.fields([("revoked", "\(r.revoked)"), ("seq", r.seq == 0 ? "- (nothing to revoke)" : "\(r.seq)")])
        }
    }
}

struct Revocations: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the revocation log.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List revocation log entries after a sequence number.",
            discussion: "Example:\n  tokenctl revocations list --since 100 --limit 20 --output json")
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
                Output.json(["head": r.head, "entries": r.entries.map { e in
                    ["seq": e.seq, "kind": e.kind, "value": e.value, "reason": e.reason, "revoked": e.revoked, "created_at": e.createdAt] as [String: Any]
                }])
            case .table:
                Output.table(["SEQ", "KIND", "VALUE", "REVOKED", "CREATED", "REASON"], r.entries.map { e in
                    ["\(e.seq)", e.kind, e.value, "\(e.revoked)", Output.time(e.createdAt), e.reason.isEmpty ? "-" : e.reason]
                })
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this replica's revocation watermark, lag, cache and filter figures.",
        discussion: "Example:\n  tokenctl status --output json")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let r: Tokend_V1_StatusResponse = try await connection.call("Status", Tokend_V1_StatusRequest())
        switch connection.output {
        case .json:
            Output.json(["watermark": r.watermark, "head": r.head, "lag_seconds": r.lagSeconds, "cache_entries": r.cacheEntries,
                         "filter_entries": r.filterEntries, "store": r.store, "version": r.version,
                         "cache_hit_ratio": r.cacheHitRatio, "filter_bits_per_entry": r.filterBitsPerEntry,
                         "filter_false_positives": r.filterFalsePositives])
        case .table:
            Output.fields([("store", r.store), ("version", r.version), ("watermark", "\(r.watermark)"), ("head", "\(r.head)"),
                           ("lag_seconds", String(format: "%.3f", r.lagSeconds)), ("cache_entries", "\(r.cacheEntries)"),
                           ("cache_hit_ratio", String(format: "%.3f", r.cacheHitRatio)),
                           ("filter_entries", "\(r.filterEntries)"),
                           ("filter_bits_per_entry", String(format: "%.1f", r.filterBitsPerEntry)),
                           ("filter_false_positives", "\(r.filterFalsePositives)")])
        }
    }
}
