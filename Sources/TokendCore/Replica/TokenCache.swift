import Foundation
import Synchronization
import TokendWire

/// A bounded per-replica cache of token records, keyed by token hash.
///
/// It holds only what never changes about a token (its claims); whether a token is revoked is
/// decided on every answer by the `RevocationView`. Each record is packed in one allocation
/// (`PackedTokenRecord`) under the first 16 bytes of its hash, and the claims tokens usually share
/// (client, issuer, scope, audiences, extra claims) are kept once (`SharedClaims`): about 230 bytes
/// per record of the shape `TokenCacheMemoryTests` states, table included. An entry is never served after its token's
/// `exp`, and is dropped when read then.
///
/// Two bounds limit it, whichever is reached first (SPEC: `TOKEND_CACHE_ENTRIES`,
/// `TOKEND_CACHE_MEMORY`): `capacity` records, and `memoryLimit` bytes of `bytes`, the cache's
/// estimate of the memory it holds. An insert that would pass either evicts arbitrary entries (the
/// a 256th of the records at a time, from a random place in the table) until it fits, which costs
/// O(1) per insert amortised and keeps no per-entry bookkeeping; in particular it evicts rather than
/// let the hash table grow past what the byte bound allows.
public final class TokenCache: Sendable {
    /// SPEC's default `TOKEND_CACHE_MEMORY`.
    public static let defaultMemoryLimit = 256 << 20
    /// At most this many distinct sets of shared claims are pooled; records with claims beyond
    /// them own their copy.
    static let poolLimit = 16_384

    public let capacity: Int
    /// The bound on `bytes`.
    public let memoryLimit: Int

    /// Bytes 0..<16 of a token hash: the table's key (the rest is in the record, and compared).
    struct Key: Hashable {
        var a: UInt64
        var b: UInt64

        init(_ hash: TokenHash) {
            let words = hash.words
            (a, b) = (words.0, words.1)
        }

        /// SHA-256 output is uniform: one word is as good a hash-table key as two.
        func hash(into hasher: inout Hasher) { hasher.combine(a) }
    }

    private struct State {
        var records: [Key: PackedTokenRecord] = [:]
        /// The claims records share (see `SharedClaims`).
        var pool: Set<SharedClaims> = []
        /// `PackedRecordHeader.bytes` summed over `records`.
        var recordBytes: Int = 0
        /// `SharedClaims.bytes` summed over `pool`.
        var poolBytes: Int = 0
        var hits: Int = 0
        var misses: Int = 0

        mutating func remove(_ key: Key) {
            guard let removed = records.removeValue(forKey: key) else { return }
            recordBytes -= Int(removed.header.bytes)
            let claims = removed.header.claims
            guard claims.pooled else { return }
            claims.users -= 1
            if claims.users == 0 {
                pool.remove(claims)
                claims.pooled = false
                poolBytes -= claims.bytes
            }
        }

        var bytes: Int {
            TokenCache.tableBytes(capacity: records.capacity) + recordBytes + TokenCache.poolTableBytes(capacity: pool.capacity)
                + poolBytes
        }

        /// `bytes` once a record adding `added` bytes is inserted under a new key.
        func bytesAfterInserting(_ added: Int) -> Int {
            TokenCache.tableBytes(capacity: TokenCache.capacityAfterInserting(count: records.count, capacity: records.capacity))
                + recordBytes + TokenCache.poolTableBytes(capacity: pool.capacity) + poolBytes + added
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
        let key = Key(hash)
        let packed: PackedTokenRecord? = state.withLock { state in
            guard let packed = state.records[key], packed.holds(hash) else {
                state.misses += 1
                return nil
            }
            if packed.expiresAt <= now {
                state.remove(key)
                state.misses += 1
                return nil
            }
            state.hits += 1
            return packed
        }
        // Unpacked outside the lock: a packed record never changes once made.
        return packed?.unpack(hash: hash)
    }

    /// Caches an unrevoked, unexpired access token record. Refresh tokens are never cached: a
    /// redemption spends one without a revocation log entry (RFC 9700 rotation), so only the
    /// store knows whether it is still current. A record that would not fit in an empty cache's
    /// byte bound is not cached.
    public func put(_ record: TokenRecord, now: Date) {
        guard capacity > 0, record.kind == .access, record.revokedAt == nil, record.expiresAt > now else { return }
        let key = Key(record.hash)
        let candidate = SharedClaims(of: record)
        let packed = PackedTokenRecord.make(record, claims: candidate)
        state.withLock { state in
            state.remove(key)
            while true {
                let pooled = state.pool.firstIndex(of: candidate).map { state.pool[$0] }
                let added = Int(packed.header.bytes) + (pooled == nil ? candidate.bytes : 0)
                if state.records.count < capacity, state.bytesAfterInserting(added) <= memoryLimit {
                    let claims = pooled ?? candidate
                    if pooled == nil, state.pool.count < Self.poolLimit {
                        candidate.pooled = true
                        state.pool.insert(candidate)
                        state.poolBytes += candidate.bytes
                    }
                    if claims.pooled {
                        claims.users += 1
                        if claims !== candidate { packed.header.claims = claims }
                    } else {
                        // Owned by this record alone: its bytes are the record's.
                        packed.header.bytes += Int32(clamping: candidate.bytes)
                    }
                    state.records[key] = packed
                    state.recordBytes += Int(packed.header.bytes)
                    return
                }
                // Evict arbitrary entries until it fits (`evictionBatch`: a 256th of them, from a
                // random place in the table); an empty cache it does not fit in leaves it out.
                let victims = state.records.evictionBatch()
                guard !victims.isEmpty else { return }
                for victim in victims { state.remove(victim) }
            }
        }
    }

    public func remove(_ hash: TokenHash) {
        let key = Key(hash)
        state.withLock { state in
            if let packed = state.records[key], packed.holds(hash) { state.remove(key) }
        }
    }

    /// Drops every entry expired at `now`; returns how many.
    @discardableResult
    public func removeExpired(now: Date) -> Int {
        state.withLock { state in
            let expired = state.records.compactMap { $0.value.expiresAt <= now ? $0.key : nil }
            for key in expired { state.remove(key) }
            return expired.count
        }
    }

    public var count: Int { state.withLock { $0.records.count } }

    /// Distinct sets of shared claims pooled, and the bytes of the pool's own table.
    var pool: (count: Int, tableBytes: Int) {
        state.withLock { ($0.pool.count, Self.poolTableBytes(capacity: $0.pool.capacity)) }
    }

    /// The bytes this cache holds, as it estimates them (what `memoryLimit` bounds and
    /// `tokend_cache_bytes` reports): its hash table, from the table's real capacity (bucket count
    /// × the key's and the reference's stride, plus bitmap and header; after a growth up to half
    /// of it is empty buckets), each packed record's allocation (`PackedTokenRecord`), and the
    /// pool of shared claims with their strings.
    ///
    /// It does not count malloc's free lists or fragmentation, nor, for the moment a growth
    /// copies it, the old table (up to half the bound, briefly). `TokenCacheMemoryTests` compares
    /// it with the process's RSS growth while the cache fills.
    public var bytes: Int { state.withLock { $0.bytes } }

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
        dictionaryStorageBytes(capacity: capacity, entryStride: MemoryLayout<Key>.stride + MemoryLayout<PackedTokenRecord>.stride)
    }

    /// The pool's table at `capacity` (a `Set` of references).
    static func poolTableBytes(capacity: Int) -> Int {
        dictionaryStorageBytes(capacity: capacity, entryStride: MemoryLayout<SharedClaims>.stride)
    }

    /// The capacity a table of `count` entries and `capacity` will have once one more key is
    /// inserted: the same, or, when full, that of the next power-of-two bucket count (the
    /// standard library's growth).
    static func capacityAfterInserting(count: Int, capacity: Int) -> Int {
        count < capacity ? capacity : tableCapacity(buckets: bucketCount(capacity: count + 1))
    }

    /// A native `Dictionary`'s (or `Set`'s) storage: a 64-byte header, a bitmap of one bit per bucket (in
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
