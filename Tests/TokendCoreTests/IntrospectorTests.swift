import Foundation
import Testing
import TokendTestSupport

@testable import TokendCore

private let now = Date(timeIntervalSince1970: 1_800_000_000)

private func record(
    expiresAt: Date = now.addingTimeInterval(3600),
    notBefore: Date? = nil,
    audiences: [String] = [],
    revokedAt: Date? = nil
) -> TokenRecord {
    TokenRecord(
        hash: TokenHash(token: "tkd_at_x"),
        kind: .access,
        clientID: "app",
        subject: "alice",
        username: nil,
        scope: "read",
        audiences: audiences,
        issuer: "https://tokend.test",
        issuedAt: now.addingTimeInterval(-60),
        notBefore: notBefore,
        expiresAt: expiresAt,
        jti: "jti-1",
        grantID: "grant-1",
        confirmation: nil,
        extra: [:],
        revokedAt: revokedAt
    )
}

@Suite struct IntrospectorEvaluateTests {
    @Test func validRecordIsActiveAndCarriesTheRecord() {
        let r = record()
        #expect(Introspector.evaluate(r, audiences: [], at: now) == .active(r))
    }

    @Test func expiryIsExclusive() {
        #expect(Introspector.evaluate(record(expiresAt: now), audiences: [], at: now) == .inactive)
        #expect(Introspector.evaluate(record(expiresAt: now.addingTimeInterval(-1)), audiences: [], at: now) == .inactive)
        #expect(Introspector.evaluate(record(expiresAt: now.addingTimeInterval(-0.001)), audiences: [], at: now) == .inactive)
        let almost = record(expiresAt: now.addingTimeInterval(0.001))
        #expect(Introspector.evaluate(almost, audiences: [], at: now) == .active(almost))
    }

    @Test func notBeforeIsInclusive() {
        let atNbf = record(notBefore: now)
        #expect(Introspector.evaluate(atNbf, audiences: [], at: now) == .active(atNbf))
        #expect(Introspector.evaluate(record(notBefore: now.addingTimeInterval(1)), audiences: [], at: now) == .inactive)
        let past = record(notBefore: now.addingTimeInterval(-1))
        #expect(Introspector.evaluate(past, audiences: [], at: now) == .active(past))
    }

    @Test func revokedIsInactiveWhateverTheRevocationTime() {
        #expect(Introspector.evaluate(record(revokedAt: now.addingTimeInterval(-10)), audiences: [], at: now) == .inactive)
        // A revocation time ahead of this replica's clock (skew between replicas) still revokes.
        #expect(Introspector.evaluate(record(revokedAt: now.addingTimeInterval(10)), audiences: [], at: now) == .inactive)
    }

    @Test func callerAudiencesNeedAnOverlap() {
        let scoped = record(audiences: ["api-a", "api-b"])
        #expect(Introspector.evaluate(scoped, audiences: [], at: now) == .active(scoped))
        #expect(Introspector.evaluate(scoped, audiences: ["api-b"], at: now) == .active(scoped))
        #expect(Introspector.evaluate(scoped, audiences: ["api-x", "api-a"], at: now) == .active(scoped))
        #expect(Introspector.evaluate(scoped, audiences: ["api-x"], at: now) == .inactive)
        #expect(Introspector.evaluate(scoped, audiences: ["API-A"], at: now) == .inactive)
        #expect(Introspector.evaluate(scoped, audiences: ["api"], at: now) == .inactive)

        let unscoped = record(audiences: [])
        #expect(Introspector.evaluate(unscoped, audiences: ["api-a"], at: now) == .inactive)
        #expect(Introspector.evaluate(unscoped, audiences: [], at: now) == .active(unscoped))
    }

    @Test func everyReasonAloneMakesItInactive() {
        // Expired but otherwise fine, not yet valid but otherwise fine, and so on: each check stands alone.
        let cases: [TokenRecord] = [
            record(expiresAt: now),
            record(notBefore: now.addingTimeInterval(30)),
            record(revokedAt: now),
        ]
        for r in cases { #expect(Introspector.evaluate(r, audiences: [], at: now) == .inactive) }
    }
}

/// The introspector over the real embedded store (each store's own failures are the store suites'
/// business); lookups are counted by the time limit `tokend serve` wraps every store in, and a store
/// outage is the store taken down (`withStore(_:takeDown:)`).
@Suite struct IntrospectorLookupTests {
    @Test func malformedTokensAreInactiveWithoutALookup() async throws {
        try await withStore(.sqlite) { base in
            let store = TimeLimitedStore(base, seconds: 60)
            let introspector = Introspector(store: store, now: { now }, logger: TestEnvironment.logger)
            for token in ["", "abc", "tkd_at_short", "tkd_at_" + String(repeating: "*", count: 43), String(repeating: "a", count: 10 * 1024)] {
                let result = try await introspector.introspect(token: token, audiences: [])
                #expect(result == .inactive)
            }
            #expect(store.calls.snapshot.calls == 0)
        }
    }

    @Test func aStoreFailureIsUnavailableNeverAGuess() async throws {
        try await withStore(.sqlite) { base, takeDown in
            let store = TimeLimitedStore(base, seconds: 60)
            let introspector = Introspector(store: store, now: { now }, logger: TestEnvironment.logger)
            try await takeDown()
            do {
                let result = try await introspector.introspect(token: OpaqueToken.generate(.access), audiences: [])
                Issue.record("expected unavailable, got \(result)")
            } catch let error as TokendError {
                #expect(error.code == .unavailable)
                #expect(error == .unavailable)
            }
            #expect(store.calls.snapshot.calls == 1)
            #expect(store.calls.snapshot.failures == 1, "the store's own error, not a timeout: \(store.calls.snapshot)")
            #expect(store.calls.snapshot.timeouts == 0)
        }
    }

    @Test func knownTokenIsLookedUpByItsHash() async throws {
        try await withStore(.sqlite) { base in
            let token = OpaqueToken.generate(.access)
            var r = record()
            r.hash = TokenHash(token: token)
            try await base.insertTokens([r])
            let store = TimeLimitedStore(base, seconds: 60)
            let introspector = Introspector(store: store, now: { now }, logger: TestEnvironment.logger)
            #expect(try await introspector.introspect(token: token, audiences: []) == .active(r))
            #expect(try await introspector.introspect(token: OpaqueToken.generate(.access), audiences: []) == .inactive)
            #expect(store.calls.snapshot.calls == 2)
        }
    }

    @Test func revokerTurnsStoreFailuresIntoUnavailable() async throws {
        try await withStore(.sqlite) { store, takeDown in
            let revoker = Revoker(store: store, now: { now }, logger: TestEnvironment.logger)
            let caller = ClientRecord(id: "app", roles: [], audiences: [], secretSalt: [], secretHash: [], createdAt: now)
            try await takeDown()
            do {
                try await revoker.revoke(token: OpaqueToken.generate(.access), caller: caller)
                Issue.record("expected unavailable")
            } catch let error as TokendError {
                #expect(error.code == .unavailable)
            }
        }
    }
}

/// Bloom-filter confirmation: a hash that hits the filter (it shares the 16 leading bytes the
/// filter's probes are read from with a revoked one) but is not revoked stays active, and the
/// false-positive counter moves; the revoked one is revoked. Without the exact-set confirmation the
/// first expectation fails.
@Suite struct BloomConfirmationTests {
    @Test func aFilterHitOnAnUnrevokedHashIsConfirmedAgainstTheExactSet() throws {
        let view = RevocationView()
        let revokedBytes = (0..<32).map { UInt8($0 &* 7 &+ 3) }
        var twinBytes = revokedBytes
        for index in 16..<32 { twinBytes[index] ^= 0xFF }  // same leading 16 bytes, different tail
        let revoked = TokenHash(bytes: revokedBytes)
        let twin = TokenHash(bytes: twinBytes)
        #expect(revoked != twin)
        view.apply([
            RevocationEntry(
                seq: 1, kind: .token, value: "jti-r", tokenHashes: [revoked], reason: "test", revokedCount: 1,
                createdAt: now, expiresAt: now.addingTimeInterval(3600)
            )
        ])
        var twinRecord = record()
        twinRecord.hash = twin
        var revokedRecord = record()
        revokedRecord.hash = revoked
        let before = view.figures.filterFalsePositives
        #expect(view.verdict(for: twinRecord) == .notRevoked, "a filter hit must be confirmed against the exact set")
        #expect(view.figures.filterFalsePositives == before + 1, "the false-positive counter moves on a confirmed miss")
        #expect(view.verdict(for: revokedRecord) == .revoked)
        #expect(view.figures.filterFalsePositives == before + 1)
    }
}

/// The audience restriction holds on the memory path too: a cached record answered from memory is
/// inactive for a caller whose audiences it does not carry.
@Suite struct MemoryPathAudienceTests {
    @Test(arguments: StoreKind.allCases)
    func aCachedTokenOutsideTheCallersAudiencesIsInactiveFromMemory(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let clock = ManualClock()
            let replica = Replica(store: store, cacheEntries: 100, maxStaleness: 60, now: clock.now, logger: TestEnvironment.logger)
            try await replica.feed?.sync()
            _ = try await ClientRegistry(store: store, now: clock.now).create(id: "app", roles: ["introspect"], audiences: [])
            let issuer = TokenIssuer(store: store, issuer: IssuerIdentifier("https://tokend.test"), now: clock.now, logger: TestEnvironment.logger)
            let token = try await issuer.issue(IssueRequest(clientID: "app", subject: "alice", audiences: ["api"])).accessToken
            let introspector = Introspector(replica: replica, logger: TestEnvironment.logger)
            let first = try await introspector.answer(token: token, audiences: ["api"])
            #expect(first.result.isActive && first.source == .store)
            let cached = try await introspector.answer(token: token, audiences: ["api"])
            #expect(cached.result.isActive && cached.source == .memory)
            let outside = try await introspector.answer(token: token, audiences: ["billing"])
            #expect(outside.result == .inactive && outside.source == .memory, "\(outside)")
            let unrestricted = try await introspector.answer(token: token, audiences: [])
            #expect(unrestricted.result.isActive && unrestricted.source == .memory)
        }
    }
}
