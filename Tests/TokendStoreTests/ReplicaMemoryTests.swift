import Foundation
import Testing
import TokendCore
import TokendTestSupport

/// The memory path of introspection against real stores: a cached record is answered without the
/// store, its revocation state comes from the feed-fed view, and a stale view sends answers back
/// to the store. "Replica B" below is a second Revoker over the same store, as another tokend
/// process would be: its revocations reach this replica only through the revocation log.
@Suite struct ReplicaMemoryTests {
    struct Replica {
        let clock: ManualClock
        let view: RevocationView
        let cache: TokenCache
        let feed: RevocationFeed
        let introspector: Introspector
        /// Revokes through this replica: applies its own revocation before returning.
        let revoker: Revoker
        /// Revokes through another replica: this one learns of it only from the log.
        let otherReplica: Revoker

        init(store: any TokendStore, clock: ManualClock = ManualClock(t0), maxStaleness: TimeInterval = 5, capacity: Int = 1000) {
            self.clock = clock
            view = RevocationView()
            cache = TokenCache(capacity: capacity)
            let feed = RevocationFeed(store: store, view: view, now: clock.now, logger: TestEnvironment.logger)
            self.feed = feed
            introspector = Introspector(
                store: store,
                memory: ReplicaMemory(cache: cache, view: view, maxStaleness: maxStaleness),
                now: clock.now,
                logger: TestEnvironment.logger
            )
            let view = self.view
            revoker = Revoker(store: store, now: clock.now, logger: TestEnvironment.logger) { time in
                do { try await feed.sync() } catch { view.invalidate(before: time) }
            }
            otherReplica = Revoker(store: store, now: clock.now, logger: TestEnvironment.logger)
        }

        /// The answer and where it came from. Every answer also checks the HTTP fast path's
        /// question (`introspectFromMemory`, asked first): it answers exactly when memory answers,
        /// and the same.
        func answer(
            _ token: String,
            audiences: [String] = [],
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws -> (IntrospectionResult, AnswerSource) {
            let fast = introspector.introspectFromMemory(token, caller: makeClient("rs", audiences: audiences))
            let (result, source) = try await introspector.answer(token: token, audiences: audiences)
            if let fast {
                #expect(source == .memory && fast == result, "fast path \(fast), introspection \(result) from \(source)", sourceLocation: sourceLocation)
            } else {
                #expect(source == .store, "the fast path stepped aside, memory answered \(result)", sourceLocation: sourceLocation)
            }
            return (result, source)
        }
    }

    static func isActive(_ result: IntrospectionResult) -> Bool {
        if case .active = result { return true }
        return false
    }

    @Test(arguments: StoreKind.conformanceCases)
    func secondAnswerComesFromMemory(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store)
            try await replica.feed.sync()
            let token = mint(issuedAt: t0)
            try await store.insertTokens([token.record])
            let first = try await replica.answer(token.token)
            #expect(Self.isActive(first.0) && first.1 == .store)
            let second = try await replica.answer(token.token)
            #expect(Self.isActive(second.0) && second.1 == .memory)
            #expect(replica.cache.count == 1)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revocationElsewhereArrivesThroughTheFeed(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store)
            try await replica.feed.sync()
            let token = mint(issuedAt: t0)
            try await store.insertTokens([token.record])
            _ = try await replica.answer(token.token)  // cached

            _ = try await replica.otherReplica.revoke(.token(token.hash), reason: "elsewhere")
            // Until the feed reads the log, this replica's memory has not heard of it: that is the
            // window the NOTIFY wake-up keeps to milliseconds.
            let before = try await replica.answer(token.token)
            #expect(Self.isActive(before.0) && before.1 == .memory)

            try await replica.feed.sync()
            let after = try await replica.answer(token.token)
            #expect(after.0 == .inactive && after.1 == .memory)
            #expect(replica.view.watermark == (try await store.revocationHead()))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func ownRevocationIsVisibleAtOnce(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store)
            try await replica.feed.sync()
            let owner = makeClient("app", roles: [.introspect])
            try await store.createClient(owner)
            let token = mint(client: "app", issuedAt: t0)
            try await store.insertTokens([token.record])
            _ = try await replica.answer(token.token)
            try await replica.revoker.revoke(token: token.token, caller: owner)
            let (result, source) = try await replica.answer(token.token)
            #expect(result == .inactive)
            #expect(source == .memory)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func subjectClientAndGrantRulesApplyToCachedTokens(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store)
            try await replica.feed.sync()
            let bySubject = mint(client: "a", subject: "carol", issuedAt: t0)
            let byClient = mint(client: "b", subject: "dan", issuedAt: t0)
            let grant = makeGrant(client: "c", subject: "erin", issuedAt: t0)
            try await store.insertTokens([bySubject.record])
            try await store.insertTokens([byClient.record])
            try await insert(grant, into: store)
            for token in [bySubject, byClient, grant.access] {
                #expect(Self.isActive(try await replica.answer(token.token).0))
            }
            replica.clock.advance(by: 10)
            _ = try await replica.otherReplica.revoke(.subject("carol"), reason: "r")
            _ = try await replica.otherReplica.revoke(.client("b"), reason: "r")
            _ = try await replica.otherReplica.revoke(.grant(grant.id), reason: "r")
            try await replica.feed.sync()
            for token in [bySubject, byClient, grant.access] {
                let (result, source) = try await replica.answer(token.token)
                #expect(result == .inactive)
                #expect(source == .memory)
            }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func tokensIssuedAfterASubjectRevocationStayActive(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store)
            try await replica.feed.sync()
            let old = mint(subject: "frank", issuedAt: t0)
            try await store.insertTokens([old.record])
            replica.clock.advance(by: 0.5)
            _ = try await replica.otherReplica.revoke(.subject("frank"), reason: "reset")
            try await replica.feed.sync()

            // Issued in the same second as the revocation, but after it: iat cannot tell, so the
            // store decides (it was not covered), and the answer is active.
            let sameSecond = mint(subject: "frank", issuedAt: t0)
            try await store.insertTokens([sameSecond.record])
            #expect(Self.isActive(try await replica.answer(sameSecond.token).0))
            let again = try await replica.answer(sameSecond.token)
            #expect(Self.isActive(again.0) && again.1 == .store)

            let later = mint(subject: "frank", issuedAt: t0.addingTimeInterval(1))
            try await store.insertTokens([later.record])
            _ = try await replica.answer(later.token)
            let cached = try await replica.answer(later.token)
            #expect(Self.isActive(cached.0) && cached.1 == .memory)
            #expect(try await replica.answer(old.token).0 == .inactive)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func staleMemoryReadsTheStore(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store, maxStaleness: 5)
            try await replica.feed.sync()
            let token = mint(issuedAt: t0, ttl: 3600)
            try await store.insertTokens([token.record])
            _ = try await replica.answer(token.token)
            #expect(try await replica.answer(token.token).1 == .memory)
            replica.clock.advance(by: 6)
            // No sync for longer than the bound: memory may not answer, the store does.
            _ = try await replica.otherReplica.revoke(.token(token.hash), reason: "during staleness")
            let (result, source) = try await replica.answer(token.token)
            #expect(result == .inactive)
            #expect(source == .store)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func feedReadsLogsLongerThanOnePage(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let replica = Replica(store: store)
            var tokens: [Minted] = []
            for _ in 0..<1_203 { tokens.append(mint(issuedAt: t0)) }
            for chunk in stride(from: 0, to: tokens.count, by: 100) {
                for token in tokens[chunk..<min(chunk + 100, tokens.count)] { try await store.insertTokens([token.record]) }
            }
            for token in tokens { _ = try await store.revoke(.token(token.hash), reason: "bulk", at: t0) }
            try await replica.feed.sync()
            #expect(replica.view.watermark == (try await store.revocationHead()))
            #expect(replica.view.figures.exactEntries == 1_203)
            for token in tokens.prefix(50) { #expect(replica.view.verdict(for: token.record) == .revoked) }
        }
    }
}

@Suite struct RevocationViewTests {
    func entry(
        _ seq: Int64,
        _ kind: RevocationEntry.Kind,
        _ value: String,
        hashes: [TokenHash] = [],
        at: Date = t0,
        expires: Date? = nil
    ) -> RevocationEntry {
        RevocationEntry(
            seq: seq,
            kind: kind,
            value: value,
            tokenHashes: hashes,
            reason: "",
            revokedCount: Int64(hashes.count),
            createdAt: at,
            expiresAt: expires ?? at.addingTimeInterval(3600)
        )
    }

    @Test func applyingTwiceChangesNothing() {
        let view = RevocationView()
        let token = mint(issuedAt: t0.addingTimeInterval(-100))
        let e = entry(1, .token, token.record.jti, hashes: [token.hash])
        view.apply([e])
        view.apply([e])
        #expect(view.verdict(for: token.record) == .revoked)
        #expect(view.figures.exactEntries == 1)
        #expect(view.watermark == 1)
    }

    @Test func unrelatedTokensAreNotRevoked() {
        let view = RevocationView()
        let revoked = mint(issuedAt: t0.addingTimeInterval(-100))
        view.apply([entry(1, .token, "x", hashes: [revoked.hash]), entry(2, .subject, "someone-else", at: t0)])
        for _ in 0..<1000 {
            #expect(view.verdict(for: mint(subject: "alice", issuedAt: t0.addingTimeInterval(-100)).record) == .notRevoked)
        }
    }

    @Test func compactionDropsExpiredEntriesAndKeepsLiveOnes() {
        let view = RevocationView()
        let short = mint(issuedAt: t0, ttl: 60)
        let long = mint(issuedAt: t0, ttl: 7200)
        view.apply([
            entry(1, .token, "s", hashes: [short.hash], expires: t0.addingTimeInterval(60)),
            entry(2, .token, "l", hashes: [long.hash], expires: t0.addingTimeInterval(7200)),
            entry(3, .subject, "gone", at: t0, expires: t0.addingTimeInterval(60)),
        ])
        view.compact(now: t0.addingTimeInterval(120))
        #expect(view.figures.exactEntries == 1)
        #expect(view.figures.rules == 0)
        #expect(view.verdict(for: long.record) == .revoked)
    }

    @Test func freshnessFollowsTheLastSyncAndInvalidation() {
        let view = RevocationView()
        #expect(!view.isFresh(now: t0, maxStaleness: 5))
        view.markSynced(at: t0)
        #expect(view.isFresh(now: t0.addingTimeInterval(5), maxStaleness: 5))
        #expect(!view.isFresh(now: t0.addingTimeInterval(5.1), maxStaleness: 5))
        view.invalidate(before: t0.addingTimeInterval(10))
        view.markSynced(at: t0.addingTimeInterval(9))  // a read that began before the failed apply does not count
        #expect(!view.isFresh(now: t0.addingTimeInterval(9), maxStaleness: 5))
        view.markSynced(at: t0.addingTimeInterval(10))
        #expect(view.isFresh(now: t0.addingTimeInterval(11), maxStaleness: 5))
    }

    @Test func growsPastItsInitialCapacityWithoutLosingEntries() {
        let view = RevocationView(expectedEntries: 1024)
        let tokens = (0..<5000).map { _ in mint(issuedAt: t0) }
        view.apply(tokens.enumerated().map { i, t in entry(Int64(i + 1), .token, "v", hashes: [t.hash]) })
        #expect(view.figures.exactEntries == 5000)
        #expect(tokens.allSatisfy { view.verdict(for: $0.record) == .revoked })
    }
}

@Suite struct TokenCacheTests {
    @Test func boundedByCapacityAndNeverServesExpiredRecords() {
        let cache = TokenCache(capacity: 3)
        let tokens = (0..<5).map { _ in mint(issuedAt: t0, ttl: 60) }
        for token in tokens { cache.put(token.record, now: t0) }
        #expect(cache.count == 3)
        #expect(cache.get(tokens[4].hash, now: t0) != nil)
        #expect(cache.get(tokens[4].hash, now: t0.addingTimeInterval(60)) == nil)
        #expect(cache.count == 2)
    }

    @Test func revokedOrExpiredRecordsAreNotCached() {
        let cache = TokenCache(capacity: 10)
        var revoked = mint(issuedAt: t0).record
        revoked.revokedAt = t0
        cache.put(revoked, now: t0)
        cache.put(mint(issuedAt: t0, ttl: 10).record, now: t0.addingTimeInterval(20))
        #expect(cache.count == 0)
        let disabled = TokenCache(capacity: 0)
        disabled.put(mint(issuedAt: t0).record, now: t0)
        #expect(disabled.count == 0)
    }
}

/// Reading a long log in pages: the next page is read while one is applied, and a backlog is
/// sized from the first page; nothing may be skipped or applied out of order.
@Suite struct RevocationFeedPagingTests {
    @Test(arguments: StoreKind.conformanceCases)
    func aBacklogOfManyPagesIsAppliedCompletely(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let tokens = (0..<53).map { _ in mint(issuedAt: t0) }
            for token in tokens { try await store.insertTokens([token.record]) }
            for token in tokens.prefix(50) { _ = try await store.revoke(.token(token.hash), reason: "backlog", at: t0) }
            let view = RevocationView()
            let feed = RevocationFeed(store: store, view: view, now: { t0 }, logger: TestEnvironment.logger, pageSize: 7)
            try await feed.sync()
            #expect(view.watermark == (try await store.revocationHead()))
            #expect(view.figures.exactEntries == 50)
            #expect(tokens.prefix(50).allSatisfy { view.verdict(for: $0.record) == .revoked })
            #expect(tokens.suffix(3).allSatisfy { view.verdict(for: $0.record) == .notRevoked })
            #expect(view.isFresh(now: t0, maxStaleness: 5))
            // A later read picks up where the last one stopped.
            _ = try await store.revoke(.token(tokens[51].hash), reason: "later", at: t0)
            try await feed.sync()
            #expect(view.verdict(for: tokens[51].record) == .revoked)
            #expect(view.figures.exactEntries == 51)
        }
    }
}

/// Compaction in the running feed (`RevocationFeed.run` compacts the view once a minute of its
/// clock): entries whose tokens have all expired leave memory, every entry that still covers a
/// live token stays, and the filter is refitted to the live hashes.
@Suite struct RevocationFeedCompactionTests {
    @Test(arguments: StoreKind.conformanceCases)
    func theRunningFeedDropsExpiredEntriesAndKeepsLiveOnes(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let short = (0..<3).map { _ in mint(issuedAt: t0, ttl: 60) }
            let long = (0..<3).map { _ in mint(issuedAt: t0, ttl: 7200) }
            let bob = mint(subject: "bob", issuedAt: t0, ttl: 60)
            let carol = mint(subject: "carol", issuedAt: t0, ttl: 7200)
            for token in short + long + [bob, carol] { try await store.insertTokens([token.record]) }
            let at = t0.addingTimeInterval(1)
            for token in short + long { _ = try await store.revoke(.token(token.hash), reason: "", at: at) }
            // Rules live until their tokens expire: bob's with the short ones, carol's on.
            _ = try await store.revoke(.subject("bob"), reason: "", at: at)
            _ = try await store.revoke(.subject("carol"), reason: "", at: at)
            let head = try await store.revocationHead()

            let clock = ManualClock(t0)
            let view = RevocationView()
            let feed = RevocationFeed(store: store, view: view, pollInterval: .milliseconds(10), now: clock.now, logger: TestEnvironment.logger)
            let running = Task { await feed.run() }
            do {
                try await Self.expectCompaction(view, clock: clock, head: head, live: long, liveRule: carol)
            } catch {
                running.cancel()
                await running.value
                throw error
            }
            running.cancel()
            await running.value
        }
    }

    static func expectCompaction(_ view: RevocationView, clock: ManualClock, head: Int64, live: [Minted], liveRule: Minted) async throws {
        try await poll(until: "the log applied") { view.watermark == head }
        #expect(view.figures.exactEntries == 6 && view.figures.rules == 2)

        // Past the short tokens' expiry and the feed's minute: the next read compacts.
        clock.advance(by: 120)
        try await poll(until: "the expired entries compacted away") { view.figures.exactEntries < 6 }
        let figures = view.figures
        #expect(figures.exactEntries == 3 && figures.filterEntries == 3, "\(figures)")
        #expect(figures.rules == 1, "\(figures)")
        #expect(live.allSatisfy { view.verdict(for: $0.record) == .revoked }, "a live entry was compacted away")
        #expect(view.verdict(for: liveRule.record) == .revoked, "a live rule was compacted away")
        #expect(view.watermark == head)
    }
}
