import Foundation

/// A Bloom filter of revoked token hashes: a compact set that answers "certainly not revoked" fast.
///
/// A miss is definitive: every inserted hash is reported as present (no false negatives), so a
/// miss needs no further lookup. A hit means only "maybe revoked": confirm it against the store
/// or the exact revocation set before answering. The filter can cost a lookup, never flip an
/// answer, and it is only as fresh as the feed that fills it.
///
/// Sizing uses the standard formulas for n = `capacity` entries and a target false-positive rate
/// p: m = ⌈−n·ln p / (ln 2)²⌉ bits (≈ 14.38 per entry at 0.1 %, ≈ 9.59 at 1 %) and
/// k = round(m/n · ln 2) positions per entry (10 at 0.1 %, 7 at 1 %). m is then rounded up to a
/// multiple of 64 (at least 64) for `[UInt64]` storage; k is taken from m before that rounding.
/// A capacity of 0 is sized as 1. Beyond `capacity` the filter keeps working, but its
/// false-positive rate grows: `estimatedFalsePositiveRate` says by how much.
///
/// Token hashes are already uniform SHA-256 output, so positions come from double hashing
/// (Kirsch–Mitzenmacher) without hashing again: h1 and h2 are bytes 0..<8 and 8..<16 read as
/// little-endian `UInt64`, h2 forced odd, and position i is (h1 + i·h2) mod m for i in 0..<k,
/// in exact arithmetic. Because m is even and h2 odd, the stride h2 mod m is never 0, so the k
/// positions never collapse onto one bit.
public struct BloomFilter: Sendable {
    /// The number of entries the filter was sized for.
    public let capacity: Int
    /// The false-positive rate the filter was sized for, at `capacity` entries.
    public let targetFalsePositiveRate: Double
    /// m: the number of bits, a multiple of 64.
    public let bitCount: Int
    /// k: the number of bit positions set and tested per entry.
    public let hashCount: Int
    /// Entries inserted: inserts that set at least one new bit. A repeated hash (a revocation
    /// replayed by the feed) is not counted twice; a new hash that was already a false positive
    /// is not counted either, which is right for the estimate because it added no bits.
    public private(set) var count: Int = 0
    /// The bits, bit j of the filter at `words[j / 64]`, bit `j % 64`.
    private(set) var words: [UInt64]

    /// An empty filter for `capacity` entries at `falsePositiveRate` (0 < p < 1).
    public init(capacity: Int, falsePositiveRate: Double = 0.001) {
        let parameters = Self.optimalParameters(capacity: capacity, falsePositiveRate: falsePositiveRate)
        self.capacity = capacity
        self.targetFalsePositiveRate = falsePositiveRate
        self.bitCount = parameters.bits
        self.hashCount = parameters.hashes
        self.words = [UInt64](repeating: 0, count: parameters.bits / 64)
    }

    /// The bit count m (rounded up to a multiple of 64, at least 64) and position count k for
    /// `capacity` entries at `falsePositiveRate`, as described on the type.
    public static func optimalParameters(capacity: Int, falsePositiveRate: Double) -> (bits: Int, hashes: Int) {
        precondition(capacity >= 0, "a Bloom filter's capacity is not negative")
        precondition(falsePositiveRate > 0 && falsePositiveRate < 1, "a false-positive rate is in (0, 1)")
        let n = Double(max(capacity, 1))
        let ln2 = log(2.0)
        let exactBits = (-n * log(falsePositiveRate) / (ln2 * ln2)).rounded(.up)
        let hashes = max(1, Int((exactBits / n * ln2).rounded()))
        let bits = max(64, (Int(exactBits) + 63) / 64 * 64)
        return (bits, hashes)
    }

    /// Bits per entry relative to `capacity` (not `count`): the sizing, ≈ 14.38 at 0.1 %.
    public var bitsPerEntry: Double { Double(bitCount) / Double(max(capacity, 1)) }

    /// (1 − e^(−k·count/m))^k: the expected false-positive rate now, 0 when empty.
    public var estimatedFalsePositiveRate: Double {
        let k = Double(hashCount)
        return pow(1 - exp(-k * Double(count) / Double(bitCount)), k)
    }

    /// Adds `hash`. Returns `false` when every one of its bits was already set (a repeat, or a
    /// false positive), in which case `count` does not change.
    @discardableResult
    public mutating func insert(_ hash: TokenHash) -> Bool {
        let m = UInt64(bitCount)
        var (position, stride) = Self.start(hash, bitCount: m)
        var added = false
        for _ in 0..<hashCount {
            let word = Int(position &>> 6)
            let bit: UInt64 = 1 &<< (position & 63)
            if words[word] & bit == 0 {
                words[word] |= bit
                added = true
            }
            position += stride
            if position >= m { position -= m }
        }
        if added { count += 1 }
        return added
    }

    /// `false`: `hash` was never inserted. `true`: maybe inserted; confirm before acting on it.
    public func mightContain(_ hash: TokenHash) -> Bool {
        let m = UInt64(bitCount)
        var (position, stride) = Self.start(hash, bitCount: m)
        for _ in 0..<hashCount {
            if words[Int(position &>> 6)] & (1 &<< (position & 63)) == 0 { return false }
            position += stride
            if position >= m { position -= m }
        }
        return true
    }

    /// h1 mod m and h2 mod m, read in place from the hash bytes (no allocation). Both are below
    /// m, so stepping position += stride and subtracting m once keeps (h1 + i·h2) mod m exactly,
    /// with two divisions per call instead of k.
    @inline(__always)
    private static func start(_ hash: TokenHash, bitCount m: UInt64) -> (position: UInt64, stride: UInt64) {
        let h1 = hash.firstWordLE
        let h2 = hash.secondWordLE | 1
        return (h1 % m, h2 % m)
    }
}
