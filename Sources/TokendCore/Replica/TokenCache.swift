import Foundation
import Synchronization

/// A bounded per-replica cache of token records, keyed by token hash.
///
/// It holds only what never changes about a token (its claims); whether a token is revoked is
/// decided on every answer by the `RevocationView`. An entry is never served after its token's
/// `exp`, and is dropped when read then.
///
/// Two bounds limit it, whichever is reached first (SPEC: `TOKEND_CACHE_ENTRIES`,
/// `TOKEND_CACHE_MEMORY`): `capacity` records, and `memoryLimit` bytes of `bytes`, the cache's
/// estimate of the memory it holds. An insert that would pass either evicts arbitrary entries (the
/// dictionary's first) until it fits, which costs O(1) each and keeps no per-entry bookkeeping; in
/// particular it evicts rather than let the hash table grow past what the byte bound allows.
public final class TokenCache: Sendable {
    /// SPEC's default `TOKEND_CACHE_MEMORY`.
    public static let defaultMemoryLimit = 256 << 20

    public let capacity: Int
    /// The bound on `bytes`.
    public let memoryLimit: Int
    private struct State {
        var records: [TokenHash: TokenRecord] = [:]
        /// `TokenCache.heapBytes(of:)` summed over `records`.
        var recordBytes: Int = 0
        var hits: Int = 0
        var misses: Int = 0

        mutating func remove(_ hash: TokenHash) {
            if let removed = records.removeValue(forKey: hash) { recordBytes -= TokenCache.heapBytes(of: removed) }
        }

        /// `bytes` once a record holding `recordBytes` is inserted under a new key.
        func bytesAfterInserting(_ recordBytes: Int) -> Int {
            TokenCache.tableBytes(capacity: TokenCache.capacityAfterInserting(into: records)) + self.recordBytes + recordBytes
        }
    }
    private let state = Mutex(State())

    /// `capacity` 0 disables the cache.
    public init(capacity: Int, memoryLimit: Int = TokenCache.defaultMemoryLimit) {
        self.capacity = max(0, capacity)
        self.memoryLimit = max(0, memoryLimit)
    }

    /// The record for `hash`, unless absent or expired at `now`.
    public func get(_ hash: TokenHash, now: Date) -> TokenRecord? {
        state.withLock { state in
            guard let record = state.records[hash] else {
                state.misses += 1
                return nil
            }
            if record.expiresAt <= now {
                state.remove(hash)
                state.misses += 1
                return nil
            }
            state.hits += 1
            return record
        }
    }

    /// Caches an unrevoked, unexpired access token record. Refresh tokens are never cached: a
    /// redemption spends one without a revocation log entry (RFC 9700 rotation), so only the
    /// store knows whether it is still current. A record that would not fit in an empty cache's
    /// byte bound is not cached.
    public func put(_ record: TokenRecord, now: Date) {
        guard capacity > 0, record.kind == .access, record.revokedAt == nil, record.expiresAt > now else { return }
        let recordBytes = Self.heapBytes(of: record)
        state.withLock { state in
            state.remove(record.hash)
            while state.records.count >= capacity || state.bytesAfterInserting(recordBytes) > memoryLimit,
                let victim = state.records.first
            {
                state.remove(victim.key)
            }
            guard state.records.count < capacity, state.bytesAfterInserting(recordBytes) <= memoryLimit else { return }
            state.records[record.hash] = record
            state.recordBytes += recordBytes
        }
    }

    public func remove(_ hash: TokenHash) {
        state.withLock { $0.remove(hash) }
    }

    /// Drops every entry expired at `now`; returns how many.
    @discardableResult
    public func removeExpired(now: Date) -> Int {
        state.withLock { state in
            let before = state.records.count
            var removedBytes = 0
            state.records = state.records.filter { entry in
                if entry.value.expiresAt > now { return true }
                removedBytes += Self.heapBytes(of: entry.value)
                return false
            }
            state.recordBytes -= removedBytes
            return before - state.records.count
        }
    }

    public var count: Int { state.withLock { $0.records.count } }

    /// The bytes this cache holds, as it estimates them (what `memoryLimit` bounds and
    /// `tokend_cache_bytes` reports): its hash table, from the table's real capacity (bucket count
    /// × the key's and the record's stride, plus bitmap and header; after a growth up to half of it
    /// is empty buckets), plus what each record's strings, audience array and extra claims hold
    /// on the heap (`heapBytes(of:)`).
    ///
    /// It counts every record as owning its strings, so records that share storage (copies of one
    /// `String` value, as records issued in this process may be) are counted more than once; it
    /// does not count malloc's free lists or fragmentation, nor, for the moment a growth copies
    /// it, the old table (up to half the bound, briefly). Against the process's RSS growth while
    /// 200,000 to 1,000,000 records with strings of their own (as decoded from the store) filled
    /// it, it read 0.92–0.96 (`TokenCacheMemoryTests`, which asserts only 0.5–2×: RSS is noisy).
    public var bytes: Int {
        state.withLock { Self.tableBytes(capacity: $0.records.capacity) + $0.recordBytes }
    }

    /// Hits ÷ lookups since start; 0 before the first lookup.
    public var hitRatio: Double {
        state.withLock { state in
            let total = state.hits + state.misses
            return total == 0 ? 0 : Double(state.hits) / Double(total)
        }
    }
}

// MARK: The estimate

extension TokenCache {
    /// The heap bytes `record` holds beyond its own fixed size: one allocation per string of more
    /// than 15 UTF-8 bytes (shorter ones are stored inline in the `String`), the audience array's
    /// storage and the extra claims' dictionary storage. A pure function of the record, so what a
    /// put adds a removal subtracts.
    static func heapBytes(of record: TokenRecord) -> Int {
        var bytes = heapBytes(record.clientID) + heapBytes(record.issuer) + heapBytes(record.jti) + heapBytes(record.grantID)
        bytes += heapBytes(record.subject) + heapBytes(record.username) + heapBytes(record.scope)
        if let confirmation = record.confirmation { bytes += heapBytes(confirmation.jkt) + heapBytes(confirmation.x5tS256) }
        bytes += heapBytes(record.audiences) + heapBytes(record.extra)
        return bytes
    }

    /// A native string's storage: a 32-byte header, the UTF-8 bytes and a NUL; none up to 15 bytes.
    static func heapBytes(_ string: String?) -> Int {
        guard let count = string?.utf8.count, count > 15 else { return 0 }
        return mallocSize(32 + count + 1)
    }

    /// An array's storage (a 32-byte header, then its capacity of 16-byte `String`s) and its strings;
    /// none for an empty array (a shared singleton).
    static func heapBytes(_ strings: [String]) -> Int {
        guard strings.capacity > 0 else { return 0 }
        return mallocSize(32 + strings.capacity * MemoryLayout<String>.stride) + strings.reduce(0) { $0 + heapBytes($1) }
    }

    /// A dictionary's storage and its strings; none for an empty one (a shared singleton).
    static func heapBytes(_ claims: [String: String]) -> Int {
        guard claims.capacity > 0 else { return 0 }
        let table = dictionaryStorageBytes(capacity: claims.capacity, entryStride: 2 * MemoryLayout<String>.stride)
        return table + claims.reduce(0) { $0 + heapBytes($1.key) + heapBytes($1.value) }
    }

    /// The cache's own table at `capacity` (as `Dictionary.capacity` reports it).
    static func tableBytes(capacity: Int) -> Int {
        dictionaryStorageBytes(capacity: capacity, entryStride: MemoryLayout<TokenHash>.stride + MemoryLayout<TokenRecord>.stride)
    }

    /// The capacity `records` will have once one more key is inserted: the same, or, when full,
    /// that of the next power-of-two bucket count (the standard library's growth).
    static func capacityAfterInserting(into records: [TokenHash: TokenRecord]) -> Int {
        records.count < records.capacity ? records.capacity : tableCapacity(buckets: bucketCount(capacity: records.count + 1))
    }

    /// A native `Dictionary`'s storage: a 64-byte header, a bitmap of one bit per bucket (in
    /// 64-bit words), and a key and a value per bucket; `capacity` is ¾ of the power-of-two bucket
    /// count (the standard library's `_HashTable.scale(forCapacity:)`).
    static func dictionaryStorageBytes(capacity: Int, entryStride: Int) -> Int {
        guard capacity > 0 else { return 0 }
        let buckets = bucketCount(capacity: capacity)
        return mallocSize(64 + (buckets + 63) / 64 * 8 + buckets * entryStride)
    }

    /// The bucket count of the smallest native hash table that holds `capacity` entries at a
    /// maximum load factor of ¾, with at least one bucket free.
    static func bucketCount(capacity: Int) -> Int {
        let capacity = max(capacity, 1)
        let minimumBuckets = max(Int((Double(capacity) / 0.75).rounded(.up)), capacity + 1)
        return 1 << (Int.bitWidth - (max(minimumBuckets, 2) - 1).leadingZeroBitCount)
    }

    static func tableCapacity(buckets: Int) -> Int { Int(Double(buckets) * 0.75) }

    /// What glibc's malloc takes for a request of `size` bytes: 8 bytes of chunk header, rounded up
    /// to 16, at least 32.
    static func mallocSize(_ size: Int) -> Int { max(32, (size + 8 + 15) & ~15) }
}
