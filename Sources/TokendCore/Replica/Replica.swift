import Foundation
import Logging
import Synchronization

/// One replica's state over the shared store: its memory (token cache and revocation view), the
/// feed that keeps that memory current, read-your-writes after its own revocations, readiness and
/// the figures `AdminService/Status` and `/metrics` report.
///
/// Every replica of a cluster is one of these over the same store; they share nothing else.
public final class Replica: Sendable {
    /// The cache and the revocation view; `nil` when the cache is disabled, so every answer reads
    /// the store.
    public let memory: ReplicaMemory?
    /// Keeps `memory` in step with the revocation log; `nil` without memory.
    public let feed: RevocationFeed?
    /// The hot standby token lookups and the log's tail are read from (`TOKEND_READ_DATABASE_URL`);
    /// `nil`: the store answers everything.
    public let standby: Standby?
    /// The tokend whose revocation stream the feed follows (`TOKEND_REVOCATION_UPSTREAM`); `nil`:
    /// the feed reads the log itself.
    public let upstream: UpstreamFollower?
    let store: any TokendStore
    let now: Now
    let logger: Logger
    private let draining = Atomic<Bool>(false)
    private let drainWaiters = DrainWaiters()
    private let storeCalls: StoreCallCounters?
    private let pool: (any StorePoolReporting)?

    /// - Parameters:
    ///   - cacheEntries: token records kept in memory; 0 disables memory (and the feed).
    ///   - cacheMemory: the bound on the cache's estimate of its bytes (`TokenCache.bytes`); the
    ///     cache stops at whichever of it and `cacheEntries` it reaches first; 0 disables memory too.
    ///   - maxStaleness: how long after the last confirmed sync memory may still answer.
    ///   - storeCalls: the counters of the time limit around `store`, for `/metrics`.
    ///   - pool: the store's connection pool figures, for `/metrics`.
    ///   - standby: a hot standby for lookups and the log's tail; used only with memory, since its
    ///     answers are trusted only as far as the revocation view is confirmed.
    ///   - upstream: another tokend to follow instead of reading the log (not with `standby`).
    ///   - watchBuffer: entries a `Watch` subscriber may fall behind before it is cut off.
    public init(
        store: any TokendStore,
        cacheEntries: Int,
        cacheMemory: Int = TokenCache.defaultMemoryLimit,
        maxStaleness: TimeInterval,
        now: @escaping Now = { Date() },
        logger: Logger,
        storeCalls: StoreCallCounters? = nil,
        pool: (any StorePoolReporting)? = nil,
        standby: Standby? = nil,
        upstream: UpstreamFollower? = nil,
        watchBuffer: Int = RevocationBroadcast.defaultBufferLimit
    ) {
        self.store = store
        self.now = now
        self.logger = logger
        self.storeCalls = storeCalls
        self.pool = pool
        if cacheEntries > 0, cacheMemory > 0 {
            let view = RevocationView()
            let cache = TokenCache(capacity: cacheEntries, memoryLimit: cacheMemory)
            self.memory = ReplicaMemory(cache: cache, view: view, maxStaleness: maxStaleness)
            // Poll at least three times per staleness bound, so that a lost wake-up never makes
            // the replica stale on its own; never more than once per 50 ms.
            // With a standby, NOTIFY never arrives: poll it at TOKEND_LOG_POLL_INTERVAL.
            let poll = standby?.pollInterval ?? Duration.milliseconds(Int(min(1000, max(50, maxStaleness * 1000 / 3))))
            var reader: RevocationFeed.LogReader?
            if let standby {
                reader = { after, limit in try await standby.readLog(after: after, limit: limit) }
            }
            self.feed = RevocationFeed(
                store: store,
                view: view,
                pollInterval: poll,
                now: now,
                logger: logger,
                reader: reader,
                watchBuffer: watchBuffer
            )
            self.standby = standby
            self.upstream = upstream
        } else {
            self.memory = nil
            self.feed = nil
            self.standby = nil
            self.upstream = nil
        }
    }

    /// `postgres` or `sqlite`, for status output.
    public var storeName: String { store.name }
    /// The time limit of every store call, when the store has one (`TimeLimitedStore`).
    public var storeTimeLimit: TimeInterval? { (store as? TimeLimitedStore)?.seconds }
    /// The counters of that time limit (`/metrics`), for reads made beside it (`TokenBatchReader`).
    public var storeCallCounters: StoreCallCounters? { storeCalls }

    /// Runs the revocation feed (and the standby's probes of the primary) until cancelled;
    /// returns at once without memory.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            if let feed {
                if let upstream {
                    group.addTask { await feed.run(following: upstream) }
                } else {
                    group.addTask { await feed.run() }
                }
            }
            if let standby { group.addTask { await standby.runProbes() } }
        }
    }

    /// How this replica learns of revocations, for status output: `listen` (PostgreSQL
    /// LISTEN/NOTIFY plus polling), `standby` (polling a hot standby), `upstream` (another
    /// tokend's revocation stream), `local` (the embedded store, written only by this process),
    /// `none` (no memory: every answer reads the store).
    public var feedKind: String {
        guard feed != nil else { return "none" }
        if standby != nil { return "standby" }
        if upstream != nil { return "upstream" }
        return store.name == "postgres" ? "listen" : "local"
    }

    // MARK: Lookups

    /// The record for `hash`, for introspection. With a standby: its record, trusted only while
    /// the revocation view is confirmed fresh (the standby then holds everything the view was
    /// confirmed as of) and combined with the view's verdict; a miss, an error, a stale view or an
    /// ambiguous rule asks the primary instead, so a token issued a moment ago is never reported
    /// inactive because of replication lag.
    public func lookupToken(_ hash: TokenHash) async throws -> TokenRecord? {
        guard let standby, let memory else { return try await store.token(hash: hash) }
        let reason: Standby.FallbackReason
        if memory.view.isFresh(now: now(), maxStaleness: memory.maxStaleness) {
            do {
                if var record = try await standby.token(hash: hash) {
                    switch memory.view.verdict(for: record) {
                    case .notRevoked: return record
                    case .revoked:
                        record.revokedAt = record.revokedAt ?? now()
                        return record
                    case .ambiguous: reason = .ambiguous
                    }
                } else {
                    reason = .missing
                }
            } catch {
                reason = .error
            }
        } else {
            reason = .stale
        }
        standby.fellBack(reason)
        return try await store.token(hash: hash)
    }

    /// `lookupToken` for a batch: one store read without a standby; with one, each hash its own
    /// way, at once. Unknown hashes are absent. Throws when any read throws.
    public func lookupTokens(_ hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord] {
        guard standby != nil, memory != nil else { return try await store.tokens(hashes: hashes) }
        return try await withThrowingTaskGroup(of: TokenRecord?.self) { group in
            for hash in Set(hashes) { group.addTask { try await self.lookupToken(hash) } }
            var records: [TokenHash: TokenRecord] = [:]
            for try await record in group {
                if let record { records[record.hash] = record }
            }
            return records
        }
    }

    // MARK: Read-your-writes

    /// Called after a revocation this replica made has committed, before it is acknowledged: the
    /// replica applies the log to its memory there, so that its next answer already reflects it.
    /// If the log cannot be read now, memory stops answering for tokens issued before `time`
    /// until a later read covers it.
    public func didCommitRevocation(at time: Date) async {
        guard let feed else { return }
        do { try await feed.sync(fromStore: true) } catch { feed.view.invalidate(before: time) }
    }

    // MARK: Readiness

    /// From now on `/readyz` answers 503 (a graceful shutdown has begun); `untilDraining()` returns.
    public func beginDraining() {
        draining.store(true, ordering: .relaxed)
        drainWaiters.release()
    }
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Returns once `beginDraining()` has been called (at once if it has), or when the task is
    /// cancelled: what a health watcher waits on, so that a drain is reported without polling.
    public func untilDraining() async { await drainWaiters.wait() }

    /// Ready when not draining, the store answers, and memory (if any) is in sync.
    public func readiness() async -> Readiness {
        if isDraining { return Readiness(ready: false, reason: "shutting down") }
        do {
            try await store.ping()
        } catch {
            return Readiness(ready: false, reason: "the token store does not answer")
        }
        let lag = standby?.tracker.lag(now: now())
        let upstreamLag = upstream?.tracker.lag(now: now())
        if let memory, !memory.view.isFresh(now: now(), maxStaleness: memory.maxStaleness) {
            var reason = memory.view.lastSync == nil ? "the revocation log has not been loaded yet" : "the revocation feed is out of sync"
            if standby != nil {
                reason += lag.map { String(format: " (the standby's replay is %.3f s behind the primary)", $0) } ?? " (the standby's replay position is unknown)"
            }
            if let upstream {
                reason += upstream.isConnected ? " (following \(upstream.upstream.name))" : " (the upstream \(upstream.upstream.name) is not connected)"
            }
            return Readiness(ready: false, reason: reason, standbyReplayLagSeconds: lag, upstreamLagSeconds: upstreamLag)
        }
        return Readiness(ready: true, standbyReplayLagSeconds: lag, upstreamLagSeconds: upstreamLag)
    }

    // MARK: Figures

    /// This replica's position in the revocation log and its memory's figures.
    /// Throws `TokendError.unavailable` when the store cannot tell the log's head.
    public func status() async throws -> ReplicaStatus {
        let head = try await storeCall(logger, "reading the revocation log's head") { try await store.revocationHead() }
        guard let memory else {
            // Without memory every answer reads the store: this replica is always at the head.
            var status = ReplicaStatus(watermark: head, head: head, lagSeconds: 0, cacheEntries: 0, filterEntries: 0)
            status.feed = feedKind
            return status
        }
        let figures = memory.view.figures
        var status = ReplicaStatus(
            watermark: figures.watermark,
            head: head,
            lagSeconds: figures.lastSync.map { max(0, now().timeIntervalSince($0)) } ?? -1,
            cacheEntries: Int64(memory.cache.count),
            filterEntries: Int64(figures.filterEntries)
        )
        status.cacheHitRatio = memory.cache.hitRatio
        status.cacheBytes = Int64(memory.cache.bytes)
        status.filterBitsPerEntry = figures.filterBitsPerEntry
        status.filterFalsePositives = Int64(figures.filterFalsePositives)
        status.feed = feedKind
        status.standbyReplayLagSeconds = standby.map { $0.tracker.lag(now: now()) ?? -1 }
        if let upstream {
            let figures = upstream.figures
            status.upstream = ReplicaStatus.Upstream(name: upstream.upstream.name, connected: figures.connected, lagSeconds: figures.lagSeconds ?? -1)
        }
        return status
    }

    /// A page of the revocation log after `seq`, with the log's head.
    /// Throws `TokendError.unavailable` when the store cannot answer.
    public func revocationLog(after seq: Int64, limit: Int) async throws -> (entries: [RevocationEntry], head: Int64) {
        try await storeCall(logger, "reading the revocation log") {
            let entries = try await store.revocations(after: seq, limit: limit)
            return (entries, try await store.revocationHead())
        }
    }

    /// The store's call counts and connection pool figures, for `/metrics`.
    public var storeFigures: (calls: StoreCallCounters.Snapshot?, pool: StorePoolFigures?) {
        (storeCalls?.snapshot, pool?.poolFigures)
    }

}
