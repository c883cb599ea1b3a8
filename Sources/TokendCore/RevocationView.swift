import Foundation
import Synchronization

/// One replica's in-memory knowledge of the revocation log, fed by `RevocationFeed`.
///
/// Single-token and grant revocations are kept exactly (hash → expiry), behind a Bloom filter that
/// answers "certainly not revoked" without touching the exact set; a filter hit is confirmed
/// against the exact set, so the filter can cost a lookup but never flip an answer. Subject and
/// client revocations are compact rules ("tokens of S issued up to T are revoked"). Entries whose
/// tokens have all expired are dropped by rebuilding the filter, so memory follows the live
/// revocations, not history.
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
        public var filterEntries: Int
        public var filterBitsPerEntry: Double
        public var filterFalsePositives: Int
        public var exactEntries: Int
        public var rules: Int
    }

    private struct State {
        var filter: BloomFilter
        var exact: [TokenHash: Date] = [:]
        var subjects: [String: (cutoff: Date, expires: Date)] = [:]
        var clients: [String: (cutoff: Date, expires: Date)] = [:]
        var grants: [String: Date] = [:]
        var watermark: Int64 = 0
        var lastSync: Date?
        /// A sync counts only if it began at or after this (see `invalidate(before:)`).
        var syncFloor: Date?
        var falsePositives = 0
    }

    public let falsePositiveRate: Double
    private let state: Mutex<State>

    public init(expectedEntries: Int = 100_000, falsePositiveRate: Double = 0.001) {
        self.falsePositiveRate = falsePositiveRate
        state = Mutex(State(filter: BloomFilter(capacity: max(expectedEntries, 1024), falsePositiveRate: falsePositiveRate)))
    }

    /// Highest log sequence number applied; every entry at or below it has been applied.
    public var watermark: Int64 { state.withLock { $0.watermark } }
    public var lastSync: Date? { state.withLock { $0.lastSync } }

    /// Applies log entries (idempotent: an entry applied twice changes nothing).
    public func apply(_ entries: [RevocationEntry]) {
        guard !entries.isEmpty else { return }
        state.withLock { state in
            for entry in entries {
                for hash in entry.tokenHashes {
                    state.exact[hash] = max(state.exact[hash] ?? entry.expiresAt, entry.expiresAt)
                    _ = state.filter.insert(hash)
                }
                switch entry.kind {
                case "subject": state.subjects[entry.value] = Self.later(state.subjects[entry.value], entry)
                case "client": state.clients[entry.value] = Self.later(state.clients[entry.value], entry)
                case "grant": state.grants[entry.value] = max(state.grants[entry.value] ?? entry.expiresAt, entry.expiresAt)
                default: break
                }
                state.watermark = max(state.watermark, entry.seq)
            }
            if state.exact.count > state.filter.capacity {
                state.filter = Self.rebuilt(state.exact, capacity: state.exact.count * 2, rate: falsePositiveRate)
            }
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
            if state.filter.mightContain(record.hash) {
                if state.exact[record.hash] != nil { return .revoked }
                state.falsePositives += 1
            }
            if state.grants[record.grantID] != nil { return .revoked }
            var ambiguous = false
            for rule in [record.subject.flatMap { state.subjects[$0] }, state.clients[record.clientID]] {
                guard let rule else { continue }
                // iat is whole seconds; the rule's cutoff is exact.
                let cutoffSecond = rule.cutoff.timeIntervalSince1970.rounded(.down)
                let issued = record.issuedAt.timeIntervalSince1970
                if issued < cutoffSecond { return .revoked }
                if issued == cutoffSecond { ambiguous = true }
            }
            return ambiguous ? .ambiguous : .notRevoked
        }
    }

    /// Drops entries whose tokens have all expired at `now` and rebuilds the filter to fit.
    public func compact(now: Date) {
        state.withLock { state in
            state.exact = state.exact.filter { $0.value > now }
            state.subjects = state.subjects.filter { $0.value.expires > now }
            state.clients = state.clients.filter { $0.value.expires > now }
            state.grants = state.grants.filter { $0.value > now }
            state.filter = Self.rebuilt(state.exact, capacity: max(state.exact.count * 2, 1024), rate: falsePositiveRate)
        }
    }

    private static func rebuilt(_ exact: [TokenHash: Date], capacity: Int, rate: Double) -> BloomFilter {
        var filter = BloomFilter(capacity: capacity, falsePositiveRate: rate)
        for hash in exact.keys { _ = filter.insert(hash) }
        return filter
    }

    public var figures: Figures {
        state.withLock { state in
            Figures(
                watermark: state.watermark, lastSync: state.lastSync, filterEntries: state.filter.count,
                filterBitsPerEntry: Double(state.filter.bitCount) / Double(max(state.filter.count, 1)),
                filterFalsePositives: state.falsePositives, exactEntries: state.exact.count,
                rules: state.subjects.count + state.clients.count + state.grants.count)
        }
    }
}
