import Foundation
import Synchronization

/// A bounded per-replica cache of token records, keyed by token hash.
///
/// It holds only what never changes about a token (its claims); whether a token is revoked is
/// decided on every answer by the `RevocationView`. An entry is never served after its token's
/// `exp`, and is dropped when read then. When full, inserting evicts an arbitrary entry (the
/// dictionary's first), which costs O(1) and keeps no per-entry bookkeeping.
public final class TokenCache: Sendable {
    public let capacity: Int
    private struct State {
        var records: [TokenHash: TokenRecord] = [:]
        var hits: Int = 0
        var misses: Int = 0
    }
    private let state = Mutex(State())

    /// `capacity` 0 disables the cache.
    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The record for `hash`, unless absent or expired at `now`.
    public func get(_ hash: TokenHash, now: Date) -> TokenRecord? {
        state.withLock { state in
            guard let record = state.records[hash] else {
                state.misses += 1
                return nil
            }
            if record.expiresAt <= now {
                state.records.removeValue(forKey: hash)
                state.misses += 1
                return nil
            }
            state.hits += 1
            return record
        }
    }

    /// Caches an unrevoked, unexpired access token record. Refresh tokens are never cached: a
    /// redemption spends one without a revocation log entry (RFC 9700 rotation), so only the
    /// store knows whether it is still current.
    public func put(_ record: TokenRecord, now: Date) {
        guard capacity > 0, record.kind == .access, record.revokedAt == nil, record.expiresAt > now else { return }
        state.withLock { state in
            if state.records[record.hash] == nil, state.records.count >= capacity, let victim = state.records.keys.first {
                state.records.removeValue(forKey: victim)
            }
            state.records[record.hash] = record
        }
    }

    public func remove(_ hash: TokenHash) {
        _ = state.withLock { $0.records.removeValue(forKey: hash) }
    }

    /// Drops every entry expired at `now`; returns how many.
    @discardableResult
    public func removeExpired(now: Date) -> Int {
        state.withLock { state in
            let before = state.records.count
            state.records = state.records.filter { $0.value.expiresAt > now }
            return before - state.records.count
        }
    }

    public var count: Int { state.withLock { $0.records.count } }

    /// Hits ÷ lookups since start; 0 before the first lookup.
    public var hitRatio: Double {
        state.withLock { state in
            let total = state.hits + state.misses
            return total == 0 ? 0 : Double(state.hits) / Double(total)
        }
    }
}
