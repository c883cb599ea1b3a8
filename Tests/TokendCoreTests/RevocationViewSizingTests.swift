import Foundation
import Testing

@testable import TokendCore

/// How the revocation view sizes its Bloom filter: for the live hashes plus headroom, refitted
/// once per read of the log, never more than 1.1 × the design's bits per live entry above the floor,
/// and never at the price of a missed revocation.
@Suite struct RevocationViewSizingTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let design = -log(0.001) / (log(2.0) * log(2.0))  // ≈ 14.38 bits per entry at 0.1 %

    static func record(_ hash: TokenHash) -> TokenRecord {
        TokenRecord(
            hash: hash,
            kind: .access,
            clientID: "app",
            subject: "s",
            username: nil,
            scope: nil,
            audiences: [],
            issuer: "i",
            issuedAt: t0,
            notBefore: nil,
            expiresAt: t0.addingTimeInterval(7200),
            jti: "j",
            grantID: "g",
            confirmation: nil,
            extra: [:]
        )
    }

    static func entries(_ hashes: [TokenHash], from seq: Int64 = 1, expires: Date = t0.addingTimeInterval(3600)) -> [RevocationEntry] {
        hashes.enumerated().map { i, hash in
            RevocationEntry(
                seq: seq + Int64(i),
                kind: .token,
                value: "v",
                tokenHashes: [hash],
                reason: "",
                revokedCount: 1,
                createdAt: t0,
                expiresAt: expires
            )
        }
    }

    static func hashes(_ count: Int) -> [TokenHash] { (0..<count).map { _ in TokenHash(bytes: Randomness.bytes(32)) } }

    @Test func refittedFilterStaysWithinTenPercentOfTheDesign() {
        let view = RevocationView()
        var all: [TokenHash] = []
        for batch in [5_000, 300, 20_000, 1] {
            let added = Self.hashes(batch)
            view.apply(Self.entries(added, from: Int64(all.count + 1)))
            all += added
            view.refitFilter()
            let figures = view.figures
            #expect(figures.filterEntries == all.count)
            #expect(figures.filterBitsPerEntry >= Self.design * 0.999, "\(all.count): \(figures.filterBitsPerEntry)")
            #expect(figures.filterBitsPerEntry <= Self.design * 1.1, "\(all.count): \(figures.filterBitsPerEntry)")
        }
        #expect(all.allSatisfy { view.verdict(for: Self.record($0)) == .revoked })
    }

    @Test func hashesBeyondTheFilterAreAnsweredFromTheExactSetUntilRefitted() {
        let view = RevocationView()
        let hashes = Self.hashes(3 * RevocationView.minimumFilterCapacity)
        view.apply(Self.entries(hashes))  // no refit: the filter holds only the first 1,024
        #expect(hashes.allSatisfy { view.verdict(for: Self.record($0)) == .revoked })
        #expect(Self.hashes(1000).allSatisfy { view.verdict(for: Self.record($0)) == .notRevoked })
        view.refitFilter()
        #expect(hashes.allSatisfy { view.verdict(for: Self.record($0)) == .revoked })
        #expect(view.figures.filterBitsPerEntry <= Self.design * 1.1)
    }

    /// Compaction drops the expired hashes and refits the filter to the live ones; an expired hash
    /// that still hits the new filter is answered not revoked, since every hit is confirmed against
    /// the exact set: none of the 10,001 expired hashes may come back revoked. One of them shares
    /// the 16 bytes the filter's probes are read from with a live hash, so it always hits the filter
    /// and the false-positive counter must move.
    @Test func compactionShrinksAnOversizedFilter() {
        let view = RevocationView()
        let long = Self.hashes(2_000)
        var twin = long[0].bytes
        for index in 16..<32 { twin[index] ^= 0xFF }
        let short = Self.hashes(10_000) + [TokenHash(bytes: twin)]
        view.apply(Self.entries(short, expires: Self.t0.addingTimeInterval(60)))
        view.apply(Self.entries(long, from: 20_000, expires: Self.t0.addingTimeInterval(7200)))
        view.refitFilter()
        view.compact(now: Self.t0.addingTimeInterval(120))
        let figures = view.figures
        #expect(figures.filterEntries == 2_000)
        #expect(figures.filterBitsPerEntry <= Self.design * 1.1)
        #expect(long.allSatisfy { view.verdict(for: Self.record($0)) == .revoked })
        let wrong = short.filter { view.verdict(for: Self.record($0)) == .revoked }.count
        #expect(wrong == 0, "expired hashes answered revoked")
        #expect(view.figures.filterFalsePositives > figures.filterFalsePositives, "no filter hit was confirmed against the exact set")
    }

    @Test func compactionBeforeAnythingExpiresChangesNothing() {
        let view = RevocationView()
        let hashes = Self.hashes(2_000)
        view.apply(Self.entries(hashes))
        view.refitFilter()
        let before = view.figures
        view.compact(now: Self.t0)
        #expect(view.figures == before)
    }

    @Test func refitsConcurrentWithAppliesLoseNothing() async {
        let view = RevocationView()
        let batches = (0..<20).map { _ in Self.hashes(2_000) }
        await withTaskGroup(of: Void.self) { group in
            for (i, batch) in batches.enumerated() {
                group.addTask {
                    view.apply(Self.entries(batch, from: Int64(i * 10_000 + 1)))
                    view.refitFilter()
                }
            }
        }
        view.refitFilter()
        #expect(batches.joined().allSatisfy { view.verdict(for: Self.record($0)) == .revoked })
        #expect(view.figures.filterBitsPerEntry <= Self.design * 1.1)
        #expect(view.figures.filterBitsPerEntry >= Self.design * 0.999)
    }
}
