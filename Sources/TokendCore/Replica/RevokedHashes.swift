import Foundation

/// The exact set of revoked token hashes with each one's expiry, in about 36 bytes per hash: a
/// sorted array of hashes beside an array of expiries (whole seconds, rounded up), and a small
/// hash table of the hashes added since the arrays were last rebuilt. A `[TokenHash: Date]` takes
/// 40 bytes a bucket, at a load of ⅜ to ¾: 53 to 107 bytes a hash.
///
/// Lookups ask the table, then binary-search the arrays; they are rare (only a Bloom filter hit
/// asks), so their ~20 comparisons at 1,000,000 hashes cost little. The table is merged into the
/// arrays once it holds more than 1/16 of them (and at least `mergeFloor`), which keeps it near 2
/// bytes a hash on average and costs one pass over the arrays per merge.
struct RevokedHashes {
    /// Below this many recent hashes, no merge.
    static let mergeFloor = 4_096

    private(set) var sorted: [TokenHash] = []
    /// `expiries[i]` is the expiry of `sorted[i]`.
    private(set) var expiries: [UInt32] = []
    private(set) var recent: [TokenHash: UInt32] = [:]
    /// While a bulk load announced by `reserve(additional:)` runs, the table may grow to this
    /// before a merge (one merge at its end instead of dozens during it).
    private var bulkAllowance = 0

    var count: Int { sorted.count + recent.count }

    /// An expiry in whole seconds since 1970, rounded up (an entry is kept up to a second longer).
    static func seconds(_ date: Date) -> UInt32 {
        let value = date.timeIntervalSince1970.rounded(.up)
        return value <= 0 ? 0 : value >= Double(UInt32.max) ? UInt32.max : UInt32(value)
    }

    static func date(_ seconds: UInt32) -> Date { Date(timeIntervalSince1970: Double(seconds)) }

    func contains(_ hash: TokenHash) -> Bool {
        recent[hash] != nil || index(of: hash) != nil
    }

    /// Adds `hash`, or extends its expiry to `expiresAt` if later; returns whether it is new.
    @discardableResult
    mutating func insert(_ hash: TokenHash, expiresAt: Date) -> Bool {
        let expiry = Self.seconds(expiresAt)
        if let index = index(of: hash) {
            expiries[index] = max(expiries[index], expiry)
            return false
        }
        if let known = recent.updateValue(expiry, forKey: hash) {
            if known > expiry { recent[hash] = known }
            return false
        }
        if recent.count > max(Self.mergeFloor, sorted.count / 16, bulkAllowance) { merge() }
        return true
    }

    /// Announces about `additional` more hashes: the table is sized for them and not merged
    /// until `mergeIfLarge()` or until they have arrived.
    mutating func reserve(additional: Int) {
        bulkAllowance = additional
        recent.reserveCapacity(recent.count + additional)
    }

    /// Merges the table once it holds more than its share (1/16 of the arrays), e.g. after a bulk
    /// load; ends a bulk load's allowance.
    mutating func mergeIfLarge() {
        bulkAllowance = 0
        if recent.count > max(Self.mergeFloor, sorted.count / 16) { merge() }
    }

    /// Moves the recent hashes into the sorted arrays (exactly sized).
    mutating func merge() {
        guard !recent.isEmpty else { return }
        let added = recent.sorted { $0.key < $1.key }
        var hashes: [TokenHash] = []
        var times: [UInt32] = []
        hashes.reserveCapacity(sorted.count + added.count)
        times.reserveCapacity(sorted.count + added.count)
        var i = 0
        var j = 0
        while i < sorted.count || j < added.count {
            if j == added.count || (i < sorted.count && sorted[i] < added[j].key) {
                hashes.append(sorted[i])
                times.append(expiries[i])
                i += 1
            } else {
                hashes.append(added[j].key)
                times.append(added[j].value)
                j += 1
            }
        }
        sorted = hashes
        expiries = times
        recent = [:]
    }

    /// Drops every hash whose expiry is at or before `now`; returns the earliest expiry left.
    mutating func removeExpired(now: Date) -> Date? {
        let cutoff = now.timeIntervalSince1970
        var hashes: [TokenHash] = []
        var times: [UInt32] = []
        let kept = expiries.reduce(0) { Double($1) > cutoff ? $0 + 1 : $0 }
        hashes.reserveCapacity(kept)
        times.reserveCapacity(kept)
        var earliest = UInt32.max
        for (hash, expiry) in zip(sorted, expiries) where Double(expiry) > cutoff {
            hashes.append(hash)
            times.append(expiry)
            earliest = min(earliest, expiry)
        }
        sorted = hashes
        expiries = times
        recent = recent.filter { Double($0.value) > cutoff }
        for expiry in recent.values { earliest = min(earliest, expiry) }
        return count == 0 ? nil : Self.date(earliest)
    }

    /// Every hash (for rebuilding the filter).
    func forEach(_ body: (TokenHash) -> Void) {
        for hash in sorted { body(hash) }
        for hash in recent.keys { body(hash) }
    }

    /// The heap bytes held: the arrays' capacity and the table (an estimate for the figures).
    var bytes: Int {
        let table = recent.capacity == 0 ? 0 : TokenCache.dictionaryStorageBytes(
                capacity: recent.capacity, entryStride: MemoryLayout<TokenHash>.stride + MemoryLayout<UInt32>.stride)
        return sorted.capacity * MemoryLayout<TokenHash>.stride + expiries.capacity * 4 + table
    }

    private func index(of hash: TokenHash) -> Int? {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            let probe = sorted[middle]
            if probe == hash { return middle }
            if probe < hash { low = middle + 1 } else { high = middle }
        }
        return nil
    }
}

extension TokenHash: Comparable {
    /// An arbitrary total order (the words as unsigned integers), for sorted sets.
    public static func < (a: TokenHash, b: TokenHash) -> Bool {
        let x = a.words
        let y = b.words
        if x.0 != y.0 { return x.0 < y.0 }
        if x.1 != y.1 { return x.1 < y.1 }
        if x.2 != y.2 { return x.2 < y.2 }
        return x.3 < y.3
    }
}
