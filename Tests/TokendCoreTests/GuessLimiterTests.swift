import Foundation
import Testing
import TokendTestSupport

@testable import TokendCore

/// The guessing limits of SPEC "Clients and roles", on a manual clock: who is slowed, who never
/// is, the sliding minute, and the memory bound under a flood of addresses.
@Suite struct GuessLimiterTests {
    static let wrong = TokendError(.unauthenticated, "client authentication failed")

    @Test func anAddressPastTheLimitIsRefusedForThatClientAndForFailuresButNotForOthers() throws {
        let clock = ManualClock()
        let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 5, unknownTokensPerMinute: 10), now: clock.now)
        for attempt in 1...5 {
            try limiter.checkPresented(clientID: "victim", from: "10.0.0.66")
            let answer = limiter.failedAuthentication(clientID: "victim", from: "10.0.0.66", failure: Self.wrong)
            #expect(answer.code == .unauthenticated, "attempt \(attempt) is still a plain 401")
        }
        // The 6th failure is past the limit.
        let sixth = limiter.failedAuthentication(clientID: "victim", from: "10.0.0.66", failure: Self.wrong)
        #expect(sixth.code == .tooManyRequests)
        #expect((1...120).contains(sixth.retryAfter ?? 0))
        // Now that client_id from that address is refused before any secret is checked …
        #expect(throws: TokendError.self) { try limiter.checkPresented(clientID: "victim", from: "10.0.0.66") }
        // … every failing request from the address is 429, whatever it presents …
        #expect(limiter.failedAuthentication(clientID: "other", from: "10.0.0.66", failure: Self.wrong).code == .tooManyRequests)
        #expect(limiter.failedAuthentication(clientID: nil, from: "10.0.0.66", failure: Self.wrong).code == .tooManyRequests)
        // … but a client that authenticates from an address without failures for it is never slowed,
        try limiter.checkPresented(clientID: "good-client", from: "10.0.0.66")
        // and the victim itself is not slowed from its own address.
        try limiter.checkPresented(clientID: "victim", from: "10.0.0.7")
        #expect(limiter.failedAuthentication(clientID: "victim", from: "10.0.0.7", failure: Self.wrong).code == .unauthenticated)
        // Without an address (unknown peer) nothing is counted.
        #expect(limiter.failedAuthentication(clientID: "victim", from: nil, failure: Self.wrong).code == .unauthenticated)
    }

    @Test func theMinuteSlides() throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))  // a minute boundary + 20 s
        let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 4, unknownTokensPerMinute: 10), now: clock.now)
        for _ in 0..<6 { _ = limiter.failedAuthentication(clientID: "c", from: "192.0.2.1", failure: Self.wrong) }
        var refused = false
        do { try limiter.checkPresented(clientID: "c", from: "192.0.2.1") } catch let error as TokendError {
            refused = error.code == .tooManyRequests
            let wait = try #require(error.retryAfter)
            // 6 in this minute against a limit of 4: under it a third into the next minute at the latest.
            #expect(wait > 0 && wait <= 80, "Retry-After \(wait)")
        }
        #expect(refused)
        // Past the advertised wait, it is admitted again.
        clock.advance(by: 80)
        try limiter.checkPresented(clientID: "c", from: "192.0.2.1")
        // And two minutes later nothing is left at all.
        clock.advance(by: 120)
        for _ in 0..<4 { _ = limiter.failedAuthentication(clientID: "c", from: "192.0.2.1", failure: Self.wrong) }
        try limiter.checkPresented(clientID: "c", from: "192.0.2.1")
    }

    @Test func neverIssuedTokensPastTheLimitRefuseTheCaller() throws {
        let clock = ManualClock()
        let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 60, unknownTokensPerMinute: 3), now: clock.now)
        for _ in 0..<3 { try limiter.checkUnknownTokens(caller: "scanner"); limiter.askedNeverIssuedToken(caller: "scanner") }
        try limiter.checkUnknownTokens(caller: "scanner")  // at the limit, not past it
        limiter.askedNeverIssuedToken(caller: "scanner")
        #expect(throws: TokendError.self) { try limiter.checkUnknownTokens(caller: "scanner") }
        try limiter.checkUnknownTokens(caller: "gateway")  // another caller is untouched
    }

    @Test(arguments: StoreKind.allCases)
    func onlyNeverIssuedTokensCountExpiredAndRevokedNever(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let clock = ManualClock()
            let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 60, unknownTokensPerMinute: 2), now: clock.now)
            let introspector = Introspector(store: store, now: clock.now, logger: TestEnvironment.logger, limiter: limiter)
            let issuer = TokenIssuer(store: store, issuer: IssuerIdentifier("https://tokend.test"), now: clock.now, logger: TestEnvironment.logger)
            let (caller, _) = try await ClientRegistry(store: store, now: clock.now).create(id: "gw", roles: ["introspect"], audiences: [])
            let expired = try await issuer.issue(IssueRequest(clientID: "gw", subject: "a", ttl: 60)).accessToken
            let revoked = try await issuer.issue(IssueRequest(clientID: "gw", subject: "b")).accessToken
            let revoker = Revoker(store: store, now: clock.now, logger: TestEnvironment.logger)
            _ = try await revoker.revoke(token: revoked, caller: caller)
            clock.advance(by: 120)
            // Ten asks about an expired and a revoked token: inactive, and never counted.
            for _ in 0..<5 {
                #expect(try await introspector.introspect(expired, caller: caller) == .inactive)
                #expect(try await introspector.introspect(revoked, caller: caller) == .inactive)
            }
            // Malformed tokens are not "well-formed but never issued" either.
            for _ in 0..<5 { #expect(try await introspector.introspect("not-a-token", caller: caller) == .inactive) }
            // Three never-issued tokens: the third is past the limit of 2, so the next ask is refused.
            for index in 0..<3 {
                let unknown = "tkd_at_" + String(repeating: "u", count: 42) + String(index)
                #expect(try await introspector.introspect(unknown, caller: caller) == .inactive)
            }
            await #expect(throws: TokendError.self) { _ = try await introspector.introspect(expired, caller: caller) }
        }
    }

    /// A flood of a million distinct addresses: memory stays bounded (at most `capacity` counters
    /// per table; each is an 8-byte key and a 16-byte window in a dictionary, so with the default
    /// capacity of 65,536 about 65,536 × ~48 B ≈ 3 MiB per table, including dictionary overhead).
    @Test func aMillionDistinctAddressesStayWithinTheCapacity() throws {
        let clock = ManualClock()
        let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 60, unknownTokensPerMinute: 1000), now: clock.now)
        for index in 0..<1_000_000 {
            let address = "10.\(index >> 16 & 255).\(index >> 8 & 255).\(index & 255)"
            _ = limiter.failedAuthentication(clientID: "c", from: address, failure: Self.wrong)
        }
        let tracked = limiter.trackedCounters
        #expect(tracked.addresses <= limiter.capacity && tracked.addressesAndClients <= limiter.capacity, "\(tracked)")
        #expect(tracked.addresses > limiter.capacity / 4, "the recent addresses are still counted: \(tracked)")
        // An address hammering through the flood is still caught: its counter stays young.
        for _ in 0..<61 {
            _ = limiter.failedAuthentication(clientID: "c", from: "203.0.113.9", failure: Self.wrong)
            for index in 0..<500 { _ = limiter.failedAuthentication(clientID: "c", from: "172.16.\(index >> 8).\(index & 255)", failure: Self.wrong) }
        }
        #expect(limiter.failedAuthentication(clientID: "c", from: "203.0.113.9", failure: Self.wrong).code == .tooManyRequests)
    }
}
