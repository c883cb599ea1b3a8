import Foundation
import Logging
import Synchronization

/// What a hot standby answers (`TOKEND_READ_DATABASE_URL`). Positions are the primary's WAL
/// positions in bytes, which a standby replays in order.
public protocol StandbyReads: Sendable {
    /// The record for a token hash as the standby has it (possibly behind the primary).
    func token(hash: TokenHash) async throws -> TokenRecord?
    /// Log entries with `seq > after`, in `seq` order, at most `limit`, as the standby has them;
    /// with the position it had replayed *before* reading them, so that every transaction that
    /// committed on the primary at or below that position is in the read (`nil`: it cannot tell).
    /// Both come from one server, also behind a pooler.
    func revocations(after: Int64, limit: Int) async throws -> (entries: [RevocationEntry], replayed: Int64?)
    /// The primary's current WAL write position: every transaction that committed on the primary
    /// before this call began is at or below it.
    func primaryPosition() async throws -> Int64
}

/// Samples of the primary's WAL position over time ("probes"). They turn a standby's replayed
/// position into the moment its reads are complete as of, and into its replay lag.
///
/// A probe taken at `t` read position `p`; a standby that has replayed past `p` holds everything
/// that committed on the primary before `t`. So a log read whose standby had replayed `r` is
/// complete as of the newest probe with `p <= r`, and the standby is behind by the age of the
/// oldest probe with `p > r` (0 when it has replayed past every probe).
public final class ReplayTracker: Sendable {
    struct Probe {
        var at: Date
        var position: Int64
    }
    private struct State {
        var probes: [Probe] = []
        var lastReplayed: Int64?
    }
    /// Probes kept (oldest dropped first): at one per second, two minutes of history. A standby
    /// further behind than the oldest kept probe confirms nothing.
    static let capacity = 128
    private let state = Mutex(State())

    public init() {}

    /// Records that the primary was at `position` at some moment after `at`.
    public func record(at: Date, position: Int64) {
        state.withLock { state in
            if let last = state.probes.last, last.at >= at { return }
            state.probes.append(Probe(at: at, position: position))
            if state.probes.count > Self.capacity { state.probes.removeFirst(state.probes.count - Self.capacity) }
        }
    }

    /// The moment a read at replayed position `replayed` is complete as of; `nil` when no kept
    /// probe is at or below it. Also remembers `replayed` for `lag(now:)`.
    public func completeAsOf(replayed: Int64) -> Date? {
        state.withLock { state in
            state.lastReplayed = max(state.lastReplayed ?? replayed, replayed)
            return state.probes.last(where: { $0.position <= replayed })?.at
        }
    }

    /// How far the standby's last reported replay is behind the primary, in seconds; `nil`
    /// before the first probe and the first read.
    public func lag(now: Date) -> TimeInterval? {
        state.withLock { state in
            guard let replayed = state.lastReplayed, let newest = state.probes.last else { return nil }
            if replayed >= newest.position { return 0 }
            guard let behind = state.probes.first(where: { $0.position > replayed }) else { return nil }
            return max(0, now.timeIntervalSince(behind.at))
        }
    }
}

/// A replica's use of a hot standby: token lookups and the revocation log's tail are read there,
/// under the store's time limit, and the primary is probed so that a standby read counts as a
/// confirmed sync only for what the standby has provably replayed (`ReplayTracker`).
public final class Standby: Sendable {
    /// Why a lookup went to the primary after all (`tokend_standby_fallbacks_total{reason}`).
    public enum FallbackReason: String, Sendable, CaseIterable {
        /// The standby has no record of the token: it may have been issued a moment ago.
        case missing
        /// The standby did not answer within the time limit, or failed.
        case error
        /// The replica's revocation view is not confirmed fresh, so the standby's record cannot be trusted.
        case stale
        /// A subject or client rule from the same second as the token's `iat`.
        case ambiguous
    }

    public struct Figures: Sendable, Equatable {
        public var lookups: Int64
        public var fallbacks: [FallbackReason: Int64]
        public var replayLagSeconds: Double?
    }

    public let reads: any StandbyReads
    public let tracker = ReplayTracker()
    /// How often the revocation log is polled on the standby (`TOKEND_LOG_POLL_INTERVAL`).
    public let pollInterval: Duration
    /// How often the primary's position is sampled.
    public let probeInterval: Duration
    let timeLimit: TimeInterval
    let now: Now
    let logger: Logger
    private let lookups = Atomic<Int64>(0)
    private let fallbacks = Mutex<[FallbackReason: Int64]>([:])

    /// `maxStaleness`: probes run at least four times per bound and at most once per 100 ms, so
    /// that a standby in step is confirmed well within it.
    public init(
        reads: any StandbyReads,
        pollInterval: Duration,
        maxStaleness: TimeInterval,
        timeLimit: TimeInterval,
        now: @escaping Now = { Date() },
        logger: Logger
    ) {
        self.reads = reads
        self.pollInterval = pollInterval
        self.probeInterval = .milliseconds(Int(min(1000, max(100, maxStaleness * 1000 / 4))))
        self.timeLimit = timeLimit
        self.now = now
        self.logger = logger
    }

    /// A page of the log from the standby and the moment it is complete as of (`nil`: not
    /// confirmed, e.g. the standby is behind every kept probe).
    public func readLog(after: Int64, limit: Int) async throws -> (entries: [RevocationEntry], completeAsOf: Date?) {
        let (entries, replayed) = try await withTimeLimit(timeLimit) { [reads] in try await reads.revocations(after: after, limit: limit) }
        return (entries, replayed.flatMap { tracker.completeAsOf(replayed: $0) })
    }

    /// The standby's record for `hash`, under the time limit.
    func token(hash: TokenHash) async throws -> TokenRecord? {
        lookups.add(1, ordering: .relaxed)
        return try await withTimeLimit(timeLimit) { [reads] in try await reads.token(hash: hash) }
    }

    func fellBack(_ reason: FallbackReason) {
        fallbacks.withLock { $0[reason, default: 0] += 1 }
    }

    /// Samples the primary's position every `probeInterval` until cancelled. A failing probe is
    /// logged once per outage: without probes no standby read confirms anything, so the view goes
    /// stale and lookups go to the primary (or answer 503), never a guess.
    public func runProbes() async {
        var failing = false
        while !Task.isCancelled {
            let started = now()
            do {
                let position = try await withTimeLimit(timeLimit) { [reads] in try await reads.primaryPosition() }
                tracker.record(at: started, position: position)
                if failing { logger.notice("the primary answers position probes again") }
                failing = false
            } catch {
                if Task.isCancelled { break }
                if !failing {
                    logger.warning(
                        "probing the primary's WAL position failed; standby reads are not confirmed until it answers",
                        metadata: ["error_type": "\(String(reflecting: type(of: error)))"]
                    )
                }
                failing = true
            }
            do { try await Task.sleep(for: probeInterval) } catch { break }
        }
    }

    public var figures: Figures {
        Figures(lookups: lookups.load(ordering: .relaxed), fallbacks: fallbacks.withLock { $0 }, replayLagSeconds: tracker.lag(now: now()))
    }
}
