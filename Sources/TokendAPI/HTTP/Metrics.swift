import Foundation
import Prometheus
import Synchronization
import TokendCore

/// tokend's Prometheus metrics, served at `/metrics` on the admin listener. Names are listed in
/// the README; every one starts with `tokend_`.
public final class TokendMetrics: DecisionMetrics {
    public let registry: PrometheusCollectorRegistry
    private static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        // Present from the start so that dashboards see zeros rather than gaps.
        _ = registry.makeCounter(descriptor: Self.revocations, labels: [])
        for kind in GuessLimiter.Kind.allCases {
            _ = registry.makeCounter(descriptor: Self.guesses, labels: [("kind", kind.rawValue)])
            _ = registry.makeCounter(descriptor: Self.guessRefusals, labels: [("kind", kind.rawValue)])
        }
        for grantType in TokenGranter.grantTypes {
            for outcome in TokenRequestOutcome.allCases where outcome != .reuse || grantType == "refresh_token" {
                _ = registry.makeCounter(descriptor: Self.tokenRequests, labels: [("grant_type", grantType), ("outcome", outcome.rawValue)])
            }
        }
    }

    static var tokenRequests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "token_requests",
            unitName: "total",
            helpText: "Token endpoint requests by grant type and outcome (reuse: a spent refresh token came back; its grant was revoked)"
        )
    }

    public func tokenRequest(grantType: String, outcome: TokenRequestOutcome) {
        // Only the grant types tokend offers become label values: a client cannot mint series.
        guard TokenGranter.grantTypes.contains(grantType) else { return }
        registry.makeCounter(descriptor: Self.tokenRequests, labels: [("grant_type", grantType), ("outcome", outcome.rawValue)]).increment()
    }

    static var requests: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "http_requests",
            unitName: "total",
            helpText: "HTTP requests by listener, route and status"
        )
    }
    static var requestDuration: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "http_request_duration",
            unitName: "seconds",
            helpText: "HTTP request latency by listener and route"
        )
    }
    static var introspections: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "introspections",
            unitName: "total",
            helpText: "Introspection answers by result (active/inactive/unavailable) and source (memory/store)"
        )
    }
    static var revocations: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "revocations",
            unitName: "total",
            helpText: "Tokens revoked through this replica"
        )
    }

    /// The request counter and latency histogram of one (listener, route, status), kept so that
    /// a request costs one dictionary lookup here instead of the registry's lookups by name and
    /// label list (which build and compare label arrays on every call).
    private struct RequestKey: Hashable {
        var listener: String
        var route: String
        var status: Int
    }
    private struct RequestHandles {
        let count: Counter
        let duration: DurationHistogram
    }
    private let requestHandles = Mutex<[RequestKey: RequestHandles]>([:])
    private let introspectionCounters = Mutex<[String: Counter]>([:])

    func request(listener: String, route: String, status: Int, duration: Duration) {
        let key = RequestKey(listener: listener, route: route, status: status)
        let handles =
            requestHandles.withLock { $0[key] }
            ?? {
                let made = RequestHandles(
                    count: registry.makeCounter(
                        descriptor: Self.requests,
                        labels: [("listener", listener), ("route", route), ("status", String(status))]
                    ),
                    duration: registry.makeDurationHistogram(
                        descriptor: Self.requestDuration,
                        labels: [("listener", listener), ("route", route)],
                        buckets: Self.latencyBuckets
                    )
                )
                requestHandles.withLock { handles in
                    // Unmatched routes are bounded by the router; keep the table bounded regardless.
                    if handles.count >= 4096 { handles.removeAll() }
                    handles[key] = made
                }
                return made
            }()
        handles.count.increment()
        handles.duration.record(duration)
    }

    public func introspected(_ outcome: IntrospectionOutcome, source: AnswerSource) {
        let result = outcome.rawValue
        let source = source.rawValue
        let key = result + "/" + source
        let counter =
            introspectionCounters.withLock { $0[key] }
            ?? {
                let made = registry.makeCounter(descriptor: Self.introspections, labels: [("result", result), ("source", source)])
                introspectionCounters.withLock { $0[key] = made }
                return made
            }()
        counter.increment()
    }

    private var revocationCounter: Counter { registry.makeCounter(descriptor: Self.revocations, labels: []) }

    static var guesses: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "guesses",
            unitName: "total",
            helpText: "Guesses counted by the guessing limits: failed client authentications, never-issued tokens"
        )
    }
    static var guessRefusals: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "tokend",
            metricName: "guess_refusals",
            unitName: "total",
            helpText: "Requests answered 429 / RESOURCE_EXHAUSTED by the guessing limits"
        )
    }

    public func guessCounted(_ kind: GuessLimiter.Kind) {
        registry.makeCounter(descriptor: Self.guesses, labels: [("kind", kind.rawValue)]).increment()
    }

    public func guessRefused(_ kind: GuessLimiter.Kind) {
        registry.makeCounter(descriptor: Self.guessRefusals, labels: [("kind", kind.rawValue)]).increment()
    }

    public func revoked(count: Int64) {
        guard count > 0 else { return }
        revocationCounter.increment(by: count)
    }

    /// Point-in-time figures of this replica (memory, store calls, pool), refreshed at each scrape.
    func observe(_ replica: Replica, now: Date) {
        if let memory = replica.memory { observe(memory, now: now) }
        observe(store: replica.storeFigures)
        if let standby = replica.standby { observe(standby.figures) }
        if let upstream = replica.upstream { observe(upstream.figures) }
        if let feed = replica.feed { observe(feed.broadcast.figures) }
    }

    /// This replica's `RevocationService/Watch` subscribers (gRPC and Connect).
    private func observe(_ watch: RevocationBroadcast.Figures) {
        setGauge("watch_subscribers", "Watch streams this replica is serving live entries to", Double(watch.subscribers))
        advanceCounter(
            "watch_cut_off",
            "Watch subscribers disconnected for falling TOKEND_WATCH_BUFFER entries behind (RESOURCE_EXHAUSTED)",
            to: watch.cutOff
        )
    }

    /// The upstream this replica follows (`TOKEND_REVOCATION_UPSTREAM`).
    private func observe(_ upstream: UpstreamFollower.Figures) {
        setGauge("upstream_connected", "1 while the revocation stream of TOKEND_REVOCATION_UPSTREAM is connected", upstream.connected ? 1 : 0)
        setGauge(
            "upstream_lag_seconds",
            "How far this replica's view is behind the revocation log's head through its upstream (-1: unknown)",
            upstream.lagSeconds ?? -1
        )
        advanceCounter("upstream_events", "Revocation log entries received from the upstream's stream", to: upstream.received)
        advanceCounter("upstream_connects", "Subscriptions to the upstream's stream that it accepted", to: upstream.connects)
        advanceCounter(
            "upstream_direct_reads",
            "Reads of the revocation log from the store because the upstream had not confirmed the view for half of TOKEND_MAX_STALENESS",
            to: upstream.directReads
        )
    }

    /// A hot standby's lookups, the fallbacks to the primary and its replay lag.
    private func observe(_ standby: Standby.Figures) {
        advanceCounter("standby_lookups", "Token lookups sent to the hot standby (TOKEND_READ_DATABASE_URL)", to: standby.lookups)
        for reason in Standby.FallbackReason.allCases {
            advanceCounter(
                "standby_fallbacks",
                "Token lookups asked of the primary after all: missing on the standby, standby error, feed not confirmed, same-second rule",
                labels: [("reason", reason.rawValue)],
                to: standby.fallbacks[reason] ?? 0
            )
        }
        setGauge(
            "standby_replay_lag_seconds",
            "How far the hot standby's replay is behind the primary (-1: unknown)",
            standby.replayLagSeconds ?? -1
        )
    }

    private func observe(_ memory: ReplicaMemory, now: Date) {
        let figures = memory.view.figures
        func gauge(_ name: String, _ help: String, _ value: Double) {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tokend", metricName: name, unitName: "", helpText: help))
                .set(value)
        }
        gauge("revocation_watermark", "Highest revocation log sequence applied by this replica", Double(figures.watermark))
        gauge(
            "revocation_sync_age_seconds",
            "Seconds since this replica's last complete read of the revocation log (staleness); -1 before the first",
            figures.lastSync.map { max(0, now.timeIntervalSince($0)) } ?? -1
        )
        gauge(
            "memory_fresh",
            "1 while answers may come from memory (synced within TOKEND_MAX_STALENESS)",
            memory.view.isFresh(now: now, maxStaleness: memory.maxStaleness) ? 1 : 0
        )
        gauge("cache_entries", "Token records cached by this replica", Double(memory.cache.count))
        gauge("cache_bytes", "Bytes the token cache holds, by its own estimate (bounded by TOKEND_CACHE_MEMORY)", Double(memory.cache.bytes))
        gauge("cache_hit_ratio", "Cache hits per lookup since start", memory.cache.hitRatio)
        gauge("filter_entries", "Revoked token hashes in the Bloom filter", Double(figures.filterEntries))
        gauge("filter_bits_per_entry", "Bloom filter bits per entry", figures.filterBitsPerEntry)
        gauge(
            "revoked_hash_bytes", "Bytes the exact set of revoked token hashes and the Bloom filter hold, by their own estimate",
            Double(figures.hashBytes))
        gauge("filter_false_positives", "Bloom filter hits not confirmed by the exact set since start", Double(figures.filterFalsePositives))
        gauge("revocation_rules", "Subject, client and grant revocation rules held in memory", Double(figures.rules))
    }

    /// Totals last reported per counter name, so that counters kept elsewhere as running totals
    /// are advanced by their growth at each scrape.
    private let reportedTotals = Mutex<[String: Int64]>([:])

    private func advanceCounter(_ name: String, _ help: String, labels: [(String, String)] = [], to total: Int64) {
        let key = ([name] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
        let growth = reportedTotals.withLock { totals -> Int64 in
            let growth = total - (totals[key] ?? 0)
            if growth > 0 { totals[key] = total }
            return growth
        }
        let counter = registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "tokend", metricName: name, unitName: "total", helpText: help),
            labels: labels
        )
        if growth > 0 { counter.increment(by: growth) }
    }

    private func setGauge(_ name: String, _ help: String, _ value: Double) {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "tokend", metricName: name, unitName: "", helpText: help)).set(value)
    }

    /// The store's call counts and, for PostgreSQL, its connection pool; refreshed at each scrape.
    private func observe(store figures: (calls: StoreCallCounters.Snapshot?, pool: StorePoolFigures?)) {
        if let calls = figures.calls {
            setGauge("store_calls_in_flight", "Store calls waiting for or running in the store now", Double(calls.inFlight))
            advanceCounter("store_calls", "Store calls made", to: calls.calls)
            advanceCounter(
                "store_call_failures",
                "Store calls that failed (unreachable, timed out, broken); not-found and exists-already answers are not failures",
                to: calls.failures
            )
            advanceCounter("store_call_timeouts", "Store calls cut off by TOKEND_STORE_TIMEOUT", to: calls.timeouts)
        }
        setGauge(
            "store_abandoned_calls",
            "Store calls given up (timed out or cancelled) whose work on the connection has not ended yet",
            Double(AbandonedOperations.store.count)
        )
        guard let figures = figures.pool else { return }
        setGauge("store_pool_connections_max", "Connections the PostgreSQL pool may open", Double(figures.maxConnections))
        setGauge("store_pool_connections_open", "PostgreSQL pool connections open (or being opened) now", Double(figures.openConnections))
        advanceCounter("store_pool_connect_attempts", "PostgreSQL pool connection attempts", to: figures.connectAttempts)
        advanceCounter("store_pool_connect_failures", "PostgreSQL pool connection attempts that failed", to: figures.connectFailures)
        advanceCounter(
            "store_lookup_batches",
            "Token lookup queries sent (concurrent lookups coalesced into one = ANY($1) query)",
            to: figures.lookupBatches
        )
        advanceCounter("store_batched_lookups", "Token lookups answered by those queries", to: figures.batchedLookups)
        for (label, count) in zip(LookupBatchSizes.labels, figures.lookupBatchSizes.counts) {
            advanceCounter("store_lookup_batch_sizes", "Token lookup queries by their number of keys", labels: [("keys", label)], to: count)
        }
    }

    /// The Prometheus text exposition format.
    public func exposition() -> String { registry.emitToString() }
}
