import Foundation
import Testing

@testable import TokendCore

@Suite struct BloomFilterTests {
    @Test func everyInsertedHashIsReported() {
        var filter = BloomFilter(capacity: 100_000)
        var inserted = HashGenerator(seed: 1)
        for _ in 0..<100_000 { filter.insert(inserted.next()) }

        var replayed = HashGenerator(seed: 1)
        var missing = 0
        for _ in 0..<100_000 where !filter.mightContain(replayed.next()) { missing += 1 }
        #expect(missing == 0)
        // A few inserts may land wholly on bits already set (false positives) and not be counted.
        #expect(filter.count > 99_500 && filter.count <= 100_000)
    }

    @Test func realSHA256HashesAreAllReported() {
        var filter = BloomFilter(capacity: 1_000)
        let hashes = (0..<1_000).map { _ in TokenHash(bytes: Randomness.bytes(32)) }
        for hash in hashes { filter.insert(hash) }
        #expect(hashes.allSatisfy(filter.mightContain))
    }

    /// 1,000,000 entries and 1,000,000 distinct probes: about 1,000 false positives expected at
    /// 0.1 % (σ ≈ 32), so 1.5 × the target is far outside chance and 0 would mean no measurement.
    @Test(arguments: [0.001, 0.01])
    func measuredFalsePositiveRateStaysNearTheTarget(rate: Double) {
        let entries = 1_000_000
        var filter = BloomFilter(capacity: entries, falsePositiveRate: rate)
        var inserted = HashGenerator(seed: 0xB100_F11E)
        for _ in 0..<entries { filter.insert(inserted.next()) }

        var probes = HashGenerator(seed: 0x0DD_BA11)  // a different stream: none of these were inserted
        var falsePositives = 0
        for _ in 0..<entries where filter.mightContain(probes.next()) { falsePositives += 1 }
        let measured = Double(falsePositives) / Double(entries)

        print(
            "BloomFilter p=\(rate): n=\(entries) m=\(filter.bitCount) k=\(filter.hashCount)",
            "bits/entry=\(filter.bitsPerEntry) count=\(filter.count)",
            "measured FP=\(measured) (\(falsePositives)/\(entries))",
            "estimated FP=\(filter.estimatedFalsePositiveRate)"
        )
        #expect(measured > 0)
        #expect(measured <= 1.5 * rate)
        #expect(filter.estimatedFalsePositiveRate > 0.8 * rate && filter.estimatedFalsePositiveRate < 1.2 * rate)
    }

    @Test func parametersAtOneInAThousand() {
        let filter = BloomFilter(capacity: 1_000_000, falsePositiveRate: 0.001)
        print("BloomFilter p=0.001 sizing: bits/entry=\(filter.bitsPerEntry) k=\(filter.hashCount)")
        #expect(filter.bitsPerEntry >= 14.3 && filter.bitsPerEntry <= 14.5)
        #expect(filter.hashCount == 10)
        #expect(filter.bitCount % 64 == 0)
        #expect(filter.words.count * 64 == filter.bitCount)
        #expect(filter.capacity == 1_000_000)
        #expect(filter.targetFalsePositiveRate == 0.001)
    }

    @Test func parametersAtOneInAHundred() {
        let filter = BloomFilter(capacity: 1_000_000, falsePositiveRate: 0.01)
        print("BloomFilter p=0.01 sizing: bits/entry=\(filter.bitsPerEntry) k=\(filter.hashCount)")
        #expect(abs(filter.bitsPerEntry - 9.59) < 0.01)
        #expect(filter.hashCount == 7)
        #expect(filter.bitCount % 64 == 0)
    }

    @Test func bitCountIsAlwaysAPositiveMultipleOf64() {
        for capacity in [0, 1, 2, 7, 63, 64, 100, 1_000, 12_345] {
            for rate in [0.5, 0.1, 0.01, 0.001, 0.000_001] {
                let (bits, hashes) = BloomFilter.optimalParameters(capacity: capacity, falsePositiveRate: rate)
                #expect(bits >= 64 && bits % 64 == 0)
                #expect(hashes >= 1)
            }
        }
    }

    @Test func aFilterForZeroEntriesStillWorks() {
        var filter = BloomFilter(capacity: 0)
        #expect(filter.bitCount == 64)
        #expect(filter.hashCount == 10)
        #expect(filter.estimatedFalsePositiveRate == 0)
        let hash = TokenHash(token: "tkd_at_revoked")
        #expect(!filter.mightContain(hash))
        filter.insert(hash)
        #expect(filter.mightContain(hash))
        #expect(filter.count == 1)
    }

    @Test func anEmptyFilterContainsNothing() {
        let filter = BloomFilter(capacity: 10_000)
        var probes = HashGenerator(seed: 7)
        var hits = 0
        for _ in 0..<10_000 where filter.mightContain(probes.next()) { hits += 1 }
        #expect(hits == 0)
        #expect(filter.count == 0)
        #expect(filter.estimatedFalsePositiveRate == 0)
    }

    @Test func reinsertingAHashDoesNotCountTwice() {
        var filter = BloomFilter(capacity: 100)
        let hash = TokenHash(token: "tkd_rt_replayed")
        let first = filter.insert(hash)
        let second = filter.insert(hash)
        #expect(first)
        #expect(!second)
        #expect(filter.count == 1)
    }

    /// m = 64 and k = 3 (capacity 1 at 10 %): h1 = 0x0145 (little-endian bytes 45 01) ≡ 5, h2 = 2
    /// forced odd to 3, so bits 5, 8 and 11. Read big-endian, h1 would be ≡ 0.
    @Test func positionsAreDoubleHashedFromTheLittleEndianHashBytes() {
        var filter = BloomFilter(capacity: 1, falsePositiveRate: 0.1)
        #expect(filter.bitCount == 64 && filter.hashCount == 3)
        var bytes = [UInt8](repeating: 0xFF, count: 32)
        bytes[0..<16] = [0x45, 0x01, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0]
        filter.insert(TokenHash(bytes: bytes))
        #expect(filter.words == [1 << 5 | 1 << 8 | 1 << 11])
    }

    @Test func positionsWrapAroundModuloTheBitCount() {
        var filter = BloomFilter(capacity: 1, falsePositiveRate: 0.1)
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[0] = 62
        bytes[8] = 3
        filter.insert(TokenHash(bytes: bytes))
        #expect(filter.words == [1 << 62 | 1 << 1 | 1 << 4])  // 62, 65 − 64, 68 − 64
    }

    @Test func onlyTheFirst16HashBytesChooseThePositions() {
        var filter = BloomFilter(capacity: 1_000)
        var a = [UInt8](repeating: 0xA5, count: 32)
        var b = a
        a[31] = 0
        b[31] = 1
        filter.insert(TokenHash(bytes: a))
        #expect(filter.mightContain(TokenHash(bytes: b)))
    }
}

/// Cheap, deterministic, uniform 32-byte hashes: SplitMix64, four outputs per hash. SHA-256 or
/// the system CSPRNG per byte would dominate a million-entry test in a debug build.
private struct HashGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> TokenHash {
        let bytes = [UInt8](unsafeUninitializedCapacity: 32) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for offset in stride(from: 0, to: 32, by: 8) {
                raw.storeBytes(of: nextWord().littleEndian, toByteOffset: offset, as: UInt64.self)
            }
            initialized = 32
        }
        return TokenHash(bytes: bytes)
    }

    private mutating func nextWord() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z &>> 31)
    }
}
