import ArgumentParser
import Foundation
import TokendProto

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this replica's revocation watermark, lag, cache and filter figures.",
        discussion: "Example:\n  tokenctl status --output json"
    )
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let r: Tokend_V1_StatusResponse = try await connection.call("Status", Tokend_V1_StatusRequest())
        switch connection.output {
        case .json:
            var standby: [String: Any] = [:]
            if r.hasStandbyReplayLagSeconds { standby["standby_replay_lag_seconds"] = r.standbyReplayLagSeconds }
            if !r.upstream.isEmpty {
                standby["upstream"] = r.upstream
                standby["upstream_connected"] = r.upstreamConnected
                standby["upstream_lag_seconds"] = r.upstreamLagSeconds
            }
            Output.json(standby.merging([
                "feed": r.feed,
                "watermark": r.watermark, "head": r.head, "lag_seconds": r.lagSeconds, "cache_entries": r.cacheEntries,
                "cache_bytes": r.cacheBytes,
                "filter_entries": r.filterEntries, "store": r.store, "version": r.version,
                "cache_hit_ratio": r.cacheHitRatio, "filter_bits_per_entry": r.filterBitsPerEntry,
                "filter_false_positives": r.filterFalsePositives,
            ]) { a, _ in a })
        case .table:
            Output.fields([
                ("store", r.store), ("version", r.version), ("watermark", "\(r.watermark)"), ("head", "\(r.head)"),
                ("lag_seconds", String(format: "%.3f", r.lagSeconds)), ("cache_entries", "\(r.cacheEntries)"),
                ("cache_bytes", "\(r.cacheBytes)"),
                ("cache_hit_ratio", String(format: "%.3f", r.cacheHitRatio)),
                ("filter_entries", "\(r.filterEntries)"),
                ("filter_bits_per_entry", String(format: "%.1f", r.filterBitsPerEntry)),
                ("filter_false_positives", "\(r.filterFalsePositives)"),
                ("feed", r.feed),
            ] + (r.hasStandbyReplayLagSeconds ? [("standby_replay_lag_seconds", String(format: "%.3f", r.standbyReplayLagSeconds))] : [])
                + (r.upstream.isEmpty
                    ? []
                    : [
                        ("upstream", r.upstream), ("upstream_connected", "\(r.upstreamConnected)"),
                        ("upstream_lag_seconds", String(format: "%.3f", r.upstreamLagSeconds)),
                    ]))
        }
    }
}
