import Foundation
import Synchronization

/// One replica's in-memory knowledge of the revocation log, fed by `RevocationFeed`.
///
/// Single-token and grant revocations are kept exactly (hash → expiry, `RevokedHashes`: about 36
/// bytes a hash), behind a Bloom filter that
/// answers "certainly not revoked" without touching the exact set; a filter hit is confirmed
/// against the exact set, so the filter can cost a lookup but never flip an answer. Subject and
/// client revocations are compact rules ("tokens of S issued up to T are revoked"). Entries whose
/// tokens have all expired are dropped by compaction, so memory follows the live revocations, not
/// history.
///
/// Filter sizing: the filter is built for the live hashes plus `filterHeadroom` (8 %), at the
/// design rate, and rebuilt (`refitFilter()`, which the feed calls after each read of the log and
/// compaction calls too) once it is full or once it is sized for more than `maximumOversize`
/// (1.1) × the live hashes, never below `minimumFilterCapacity`: so it holds between 1.0 × and
/// 1.1 × the design's bits per live entry (≈ 14.4 to 15.8 at 0.1 %) above that floor. A rebuild
/// runs outside the lock on a snapshot; until the new filter is in place, or when hashes arrive
/// that the current filter has no room for, answers consult the exact set directly, so an entry
/// is never missed.
///
/// The view is trustworthy only while fresh: `lastSync` is when the log was last read completely.
public final class RevocationView: Sendable {
    /// What memory can say about a record.
    public enum Verdict: Sendable, Equatable {
        case revoked
        case notRevoked
        /// A subject or client rule was written in the same second the token was issued: `iat`
        /// (whole seconds) cannot tell which came first, so ask the store.
        case ambiguous
    }

    public struct Figures: Sendable, Equatable {
        public var watermark: Int64
        public var lastSync: Date?
        /// Live revoked hashes, all of which the filter covers once refitted.
        public var filterEntries: Int
        /// The filter's bits per live revoked hash (the design is ≈ 14.38 at 0.1 %).
        public var filterBitsPerEntry: Double
        public var filterFalsePositives: Int
        public var exactEntries: Int
        /// The heap bytes of the exact set and the filter (an estimate, `RevokedHashes.bytes`).
        public var hashBytes: Int
        public var rules: Int
    }

    private struct State {
        var filter: BloomFilter
        /// Distinct hashes inserted into `filter`.
        var filterMembers = 0
        /// Whether every key of `exact` is in `filter`; when not, `verdict` asks `exact` directly.
        var filterComplete = true
        /// A `refitFilter()` is building a new filter from a snapshot; hashes added meanwhile are
        /// kept in `addedDuringRebuild` for it.
        var rebuilding = false
        var addedDuringRebuild: [TokenHash] = []
        var exact = RevokedHashes()
        var subjects: [String: (cutoff: Date, expires: Date)] = [:]
        var clients: [String: (cutoff: Date, expires: Date)] = [:]
        var grants: [String: Date] = [:]
        /// No entry expires before this: compaction has nothing to do until then.
        var nextExpiry = Date.distantFuture
        var watermark: Int64 = 0
        var lastSync: Date?
        /// A sync counts only if it began at or after this (see `invalidate(before:)`).
        var syncFloor: Date?
        var falsePositives = 0
    }

    /// The filter's size relative to the live hashes when it is (re)built.
    public static let filterHeadroom = 1.08
    /// A filter sized for more than this × the live hashes is rebuilt smaller.
    public static let maximumOversize = 1.1
    /// The smallest filter built (about 1.8 KB at 0.1 %).
    public static let minimumFilterCapacity = 1024

    public let falsePositiveRate: Double
    private let state: Mutex<State>

    /// `expectedEntries`: the capacity of the first filter (at least `minimumFilterCapacity`);
    /// the first `refitFilter()` resizes it to the live entries.
    public init(expectedEntries: Int = RevocationView.minimumFilterCapacity, falsePositiveRate: Double = 0.001) {
        self.falsePositiveRate = falsePositiveRate
        state = Mutex(State(filter: BloomFilter(capacity: max(expectedEntries, Self.minimumFilterCapacity), falsePositiveRate: falsePositiveRate)))
    }

    /// The capacity a filter is built with for `live` hashes.
    public static func filterCapacity(forLiveEntries live: Int) -> Int {
        max(minimumFilterCapacity, Int((Double(live) * filterHeadroom).rounded(.up)))
    }

    /// Highest log sequence number applied; every entry at or below it has been applied.
    public var watermark: Int64 { state.withLock { $0.watermark } }
    public var lastSync: Date? { state.withLock { $0.lastSync } }

    /// Applies log entries (idempotent: an entry applied twice changes nothing). Hashes go into
    /// the filter while it has room; beyond that they are answered from the exact set until the
    /// next `refitFilter()`.
    public func apply(_ entries: [RevocationEntry]) {
        guard !entries.isEmpty else { return }
        state.withLock { state in
            for entry in entries {
                for hash in entry.tokenHashes {
                    guard state.exact.insert(hash, expiresAt: entry.expiresAt) else { continue }
                    if state.rebuilding { state.addedDuringRebuild.append(hash) }
                    if state.filterComplete && state.filterMembers < state.filter.capacity {
                        state.filter.insert(hash)
                        state.filterMembers += 1
                    } else {
                        state.filterComplete = false
                    }
                }
                switch entry.kind {
                case .subject: state.subjects[entry.value] = Self.later(state.subjects[entry.value], entry)
                case .client: state.clients[entry.value] = Self.later(state.clients[entry.value], entry)
                case .grant: state.grants[entry.value] = max(state.grants[entry.value] ?? entry.expiresAt, entry.expiresAt)
                case .token, .jti: break
                }
                if entry.expiresAt < state.nextExpiry { state.nextExpiry = entry.expiresAt }
                state.watermark = max(state.watermark, entry.seq)
            }
        }
    }

    /// Makes room in the exact set for `additional` more hashes (a hint; see `RevocationFeed`).
    public func reserveCapacity(additional: Int) {
        guard additional > 0 else { return }
        state.withLock { $0.exact.reserve(additional: additional) }
    }

    /// Rebuilds the filter for the live hashes when it is incomplete, over-full, or sized for
    /// more than `maximumOversize` × them. The filter is built outside the lock from a snapshot;
    /// answers meanwhile use the old filter and, for anything it may lack, the exact set.
    public func refitFilter() {
        let snapshot: RevokedHashes? = state.withLock { state in
            state.exact.mergeIfLarge()
            guard !state.rebuilding else { return nil }
            let live = state.exact.count
            let oversized = state.filter.capacity > max(Self.minimumFilterCapacity, Int(Double(live) * Self.maximumOversize))
            guard !state.filterComplete || state.filterMembers > state.filter.capacity || oversized else { return nil }
            state.rebuilding = true
            state.addedDuringRebuild = []
            return state.exact
        }
        guard let snapshot else { return }
        var filter = BloomFilter(capacity: Self.filterCapacity(forLiveEntries: snapshot.count), falsePositiveRate: falsePositiveRate)
        snapshot.forEach { filter.insert($0) }
        var members = snapshot.count
        state.withLock { state in
            for hash in state.addedDuringRebuild {
                filter.insert(hash)
                members += 1
            }
            state.filter = filter
            state.filterMembers = members
            state.filterComplete = true
            state.rebuilding = false
            state.addedDuringRebuild = []
        }
    }

    private static func later(_ current: (cutoff: Date, expires: Date)?, _ entry: RevocationEntry) -> (cutoff: Date, expires: Date) {
        guard let current else { return (entry.createdAt, entry.expiresAt) }
        return (max(current.cutoff, entry.createdAt), max(current.expires, entry.expiresAt))
    }

    /// Records that a read of the whole log that began at `time` has been applied.
    public func markSynced(at time: Date) {
        state.withLock { state in
            if let floor = state.syncFloor, time < floor { return }
            state.lastSync = max(state.lastSync ?? time, time)
        }
    }

    /// Stops answers from memory until a sync that began at or after `time` completes: used when
    /// a revocation committed at `time` could not be applied to memory at once.
    public func invalidate(before time: Date) {
        state.withLock { state in
            state.lastSync = nil
            state.syncFloor = max(state.syncFloor ?? time, time)
        }
    }

    /// Whether memory may answer at `now`: synced within `maxStaleness`.
    public func isFresh(now: Date, maxStaleness: TimeInterval) -> Bool {
        guard let lastSync = state.withLock({ $0.lastSync }) else { return false }
        return now.timeIntervalSince(lastSync) <= maxStaleness
    }

    /// Whether `record` is revoked as far as the applied log says.
    public func verdict(for record: TokenRecord) -> Verdict {
        state.withLock { state in
            if !state.filterComplete || state.filter.mightContain(record.hash) {
                if state.exact.contains(record.hash) { return .revoked }
                if state.filterComplete { state.falsePositives += 1 }
            }
            if !state.grants.isEmpty, state.grants[record.grantID] != nil { return .revoked }
            // iat is whole seconds; a rule's cutoff is exact.
            let issued = record.issuedAt.timeIntervalSince1970
            var ambiguous = false
            if !state.subjects.isEmpty, let subject = record.subject, let rule = state.subjects[subject] {
                let cutoffSecond = rule.cutoff.timeIntervalSince1970.rounded(.down)
                if issued < cutoffSecond { return .revoked }
                if issued == cutoffSecond { ambiguous = true }
            }
            if !state.clients.isEmpty, let rule = state.clients[record.clientID] {
                let cutoffSecond = rule.cutoff.timeIntervalSince1970.rounded(.down)
                if issued < cutoffSecond { return .revoked }
                if issued == cutoffSecond { ambiguous = true }
            }
            return ambiguous ? .ambiguous : .notRevoked
        }
    }

    /// Drops entries whose tokens have all expired at `now`, then refits the filter to the live
    /// hashes when it has become oversized (see `refitFilter()`).
    public func compact(now: Date) {
        state.withLock { state in
            guard state.nextExpiry <= now else { return }
            let earliestHash = state.exact.removeExpired(now: now)
            state.subjects = state.subjects.filter { $0.value.expires > now }
            state.clients = state.clients.filter { $0.value.expires > now }
            state.grants = state.grants.filter { $0.value > now }
            var next = earliestHash ?? Date.distantFuture
            for rule in state.subjects.values where rule.expires < next { next = rule.expires }
            for rule in state.clients.values where rule.expires < next { next = rule.expires }
            for expiry in state.grants.values where expiry < next { next = expiry }
            state.nextExpiry = next
        }
        refitFilter()
    }

    public var figures: Figures {
        state.withLock { state in
            Figures(
                watermark: state.watermark,
                lastSync: state.lastSync,
                filterEntries: state.exact.count,
                filterBitsPerEntry: Double(state.filter.bitCount) / Double(max(state.exact.count, 1)),
                filterFalsePositives: state.falsePositives,
                exactEntries: state.exact.count,
                hashBytes: state.exact.bytes + state.filter.bitCount / 8,
                rules: state.subjects.count + state.clients.count + state.grants.count
            )
        }
    }
}
