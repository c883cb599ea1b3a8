import Foundation
import Testing

@testable import TokendCore

/// A distinct, uniform hash per index, without SHA-256 (a million of them in a debug build).
private func hash(_ index: Int) -> TokenHash {
    var generator = SeededGenerator(seed: UInt64(index) &* 4)
    return TokenHash(words: (generator.next(), generator.next(), generator.next(), generator.next()))
}

@Suite struct RevokedHashesTests {
    /// Random inserts (new hashes, repeats with earlier and later expiries) and expiry sweeps,
    /// checked after each step against a dictionary: membership, count and the earliest expiry.
    @Test func itAnswersAsADictionaryWould() {
        var random = SeededGenerator(seed: 7)
        var set = RevokedHashes()
        var model: [TokenHash: UInt32] = [:]
        var now: UInt32 = 1_800_000_000
        for round in 0..<40 {
            for _ in 0..<Int.random(in: 0..<1_500, using: &random) {
                let key = hash(Int.random(in: 0..<20_000, using: &random))
                let expiry = now + UInt32.random(in: 1..<5_000, using: &random)
                let isNew = model[key] == nil
                #expect(set.insert(key, expiresAt: RevokedHashes.date(expiry)) == isNew)
                model[key] = max(model[key] ?? 0, expiry)
            }
            if round % 3 == 0 { set.mergeIfLarge() }
            if round % 5 == 4 {
                now += 1_000
                let earliest = set.removeExpired(now: RevokedHashes.date(now))
                model = model.filter { $0.value > now }
                #expect(earliest == model.values.min().map(RevokedHashes.date))
            }
            #expect(set.count == model.count)
            for probe in 0..<20_000 where (probe + round) % 7 == 0 {
                #expect(set.contains(hash(probe)) == (model[hash(probe)] != nil))
            }
        }
        #expect(!set.sorted.isEmpty, "the arrays were used, not only the table")
        #expect(zip(set.sorted, set.sorted.dropFirst()).allSatisfy { $0 < $1 })
    }

    /// Issue 14's target: the exact set and the Bloom filter (at 0.1 %) take at most 48 bytes per
    /// revoked hash at 1,000,000 of them, loaded as the feed loads them (a bulk load announced, then
    /// the filter refitted), and still after a further 100,000 arrive one by one.
    @Test func aMillionRevokedHashesTakeAtMost48BytesEach() {
        let view = RevocationView()
        let expires = Date(timeIntervalSince1970: 2_000_000_000)
        let entries = (0..<1_000_000).map {
            RevocationEntry(
                seq: Int64($0 + 1), kind: .token, value: "", tokenHashes: [hash($0)], reason: "", revokedCount: 1, createdAt: expires,
                expiresAt: expires)
        }
        view.reserveCapacity(additional: entries.count)
        view.apply(entries)
        view.refitFilter()
        var figures = view.figures
        #expect(figures.exactEntries == 1_000_000)
        #expect(figures.hashBytes <= 48 * 1_000_000, "\(figures.hashBytes / 1_000_000) B per revoked hash")
        for index in 1_000_000..<1_100_000 {
            view.apply([
                RevocationEntry(
                    seq: Int64(index + 1), kind: .token, value: "", tokenHashes: [hash(index)], reason: "", revokedCount: 1,
                    createdAt: expires, expiresAt: expires)
            ])
        }
        view.refitFilter()
        figures = view.figures
        #expect(figures.exactEntries == 1_100_000)
        #expect(figures.hashBytes <= 48 * 1_100_000, "\(figures.hashBytes / 1_100_000) B per revoked hash")
        print("revoked hashes: \(figures.exactEntries), \(figures.hashBytes / figures.exactEntries) B each (exact set and filter)")
    }
}

/// A small deterministic generator (SplitMix64), so a failure replays.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
