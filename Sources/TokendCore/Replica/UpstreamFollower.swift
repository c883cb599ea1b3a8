import Foundation
import Logging
import Synchronization

/// Another tokend's revocation stream (`TOKEND_REVOCATION_UPSTREAM`), as a feed follows it.
public protocol RevocationUpstream: Sendable {
    /// Where it is, for logs and status (never a secret).
    var name: String { get }
    /// Subscribes after `seq` (0: a snapshot of every live entry first) and hands each entry to
    /// `receive` in `seq` order, none skipped, until the stream ends: then it throws (or returns).
    /// `connected` is called once the upstream has accepted the subscription.
    func follow(
        after seq: Int64,
        connected: @escaping @Sendable () -> Void,
        receive: @escaping @Sendable (RevocationEntry) async throws -> Void
    ) async throws
    /// Whether `error` says that `seq` is older than the upstream's retained log (`OUT_OF_RANGE`).
    func isOutOfRange(_ error: any Error) -> Bool
}

/// A replica's use of an upstream: the stream, whether it is connected, and the samples of the
/// log's head that confirm what it delivered.
///
/// The stream carries no heartbeats, so the follower never trusts it for freshness. Every
/// `probeInterval` it reads the log's head `H` from the store at `t`; once the view has applied
/// everything up to `H`, the view is confirmed as of `t` (`ReplayTracker`, positions being log
/// sequence numbers). A stream that stalls, or an upstream whose own view is stale, therefore
/// stops confirming as soon as the log moves on; after `fallbackAfter` without a confirmation
/// the follower reads the log from the store itself, and past `TOKEND_MAX_STALENESS` memory stops
/// answering as on every replica.
public final class UpstreamFollower: Sendable {
    public struct Figures: Sendable, Equatable {
        public var connected: Bool
        public var lagSeconds: Double?
        public var received: Int64
        public var connects: Int64
        public var directReads: Int64
    }

    public let upstream: any RevocationUpstream
    public let tracker = ReplayTracker()
    let probeInterval: Duration
    let fallbackAfter: TimeInterval
    let now: Now
    private let connectedFlag = Atomic<Bool>(false)
    private let received = Atomic<Int64>(0)
    private let connects = Atomic<Int64>(0)
    private let directReads = Atomic<Int64>(0)

    /// `maxStaleness`: the head is probed at least four times per bound (at most once per 100 ms),
    /// and the log is read directly once half the bound has passed without a confirmation.
    public init(upstream: any RevocationUpstream, maxStaleness: TimeInterval, now: @escaping Now = { Date() }) {
        self.upstream = upstream
        self.probeInterval = .milliseconds(Int(min(1000, max(100, maxStaleness * 1000 / 4))))
        self.fallbackAfter = maxStaleness / 2
        self.now = now
    }

    public var isConnected: Bool { connectedFlag.load(ordering: .relaxed) }

    public var figures: Figures {
        Figures(
            connected: isConnected,
            lagSeconds: tracker.lag(now: now()),
            received: received.load(ordering: .relaxed),
            connects: connects.load(ordering: .relaxed),
            directReads: directReads.load(ordering: .relaxed)
        )
    }

    func didConnect() {
        connectedFlag.store(true, ordering: .relaxed)
        connects.add(1, ordering: .relaxed)
    }
    func didDisconnect() { connectedFlag.store(false, ordering: .relaxed) }
    func didReceive() { received.add(1, ordering: .relaxed) }
    func didReadDirectly() { directReads.add(1, ordering: .relaxed) }
}

extension RevocationFeed {
    /// Follows `follower`'s upstream instead of polling the log: the stream, the head probes that
    /// confirm it, direct reads when it falls behind, and compaction, until cancelled.
    public func run(following follower: UpstreamFollower) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.followStream(follower) }
            group.addTask { await self.probeHead(follower) }
        }
    }

    /// Confirms the view as of the newest head probe it has applied everything up to.
    private func confirm(_ follower: UpstreamFollower) {
        if let asOf = follower.tracker.completeAsOf(replayed: view.watermark) { view.markSynced(at: asOf) }
    }

    private func followStream(_ follower: UpstreamFollower) async {
        var backoff = 0.1
        var fromSnapshot = false
        var failing = false
        while !Task.isCancelled {
            let after = fromSnapshot ? 0 : view.watermark
            do {
                try await follower.upstream.follow(after: after) {
                    follower.didConnect()
                } receive: { entry in
                    // Published before applied, as every feed does: a Watch subscriber of this
                    // replica (a chain) sees each entry at or below the watermark.
                    self.broadcast.publish([entry])
                    self.view.apply([entry])
                    follower.didReceive()
                    self.confirm(follower)
                }
                fromSnapshot = false
            } catch {
                if Task.isCancelled { break }
                if follower.upstream.isOutOfRange(error) {
                    // Entries after our watermark were collected there: start over from its snapshot
                    // (applying is idempotent; what we hold beyond it has expired).
                    logger.notice("the upstream's log no longer reaches this replica's watermark; following from a snapshot")
                    fromSnapshot = true
                } else if !failing {
                    logger.warning(
                        "the revocation upstream stream ended; reconnecting (the log is read directly meanwhile if needed)",
                        metadata: ["upstream": "\(follower.upstream.name)", "error": "\(error)"]
                    )
                }
            }
            if follower.isConnected {
                backoff = 0.1
                failing = false
            } else {
                failing = true
            }
            follower.didDisconnect()
            do { try await Task.sleep(for: .milliseconds(Int(backoff * 1000))) } catch { break }
            backoff = min(backoff * 2, 5)
        }
        follower.didDisconnect()
    }

    private func probeHead(_ follower: UpstreamFollower) async {
        var lastCompaction = now()
        var failing = false
        while !Task.isCancelled {
            let started = now()
            do {
                let head = try await store.revocationHead()
                follower.tracker.record(at: started, position: head)
                confirm(follower)
                if !view.isFresh(now: now(), maxStaleness: follower.fallbackAfter) {
                    // The stream is down, stalled or behind: read the log directly this time.
                    try await sync(fromStore: true)
                    follower.didReadDirectly()
                }
                if failing { logger.notice("revocation log readable again") }
                failing = false
            } catch {
                if Task.isCancelled { break }
                if !failing {
                    logger.warning(
                        "reading the revocation log's head failed; answers leave memory after TOKEND_MAX_STALENESS",
                        metadata: ["error_type": "\(String(reflecting: type(of: error)))"]
                    )
                }
                failing = true
            }
            if now().timeIntervalSince(lastCompaction) > 60 {
                view.compact(now: now())
                lastCompaction = now()
            }
            do { try await Task.sleep(for: follower.probeInterval) } catch { break }
        }
    }
}
