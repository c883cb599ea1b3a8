import Crypto
import Foundation
import SwiftProtobuf
import Testing
import TokendProto

@testable import TokendClient

/// `AnswerCache`'s rules without I/O: every time is a parameter.
struct AnswerCacheTests {
    let start = ContinuousClock.now
    let unix: Double = 1_800_000_000

    func cache(capacity: Int = 100) -> AnswerCache {
        var cache = AnswerCache(capacity: capacity, maxStaleness: .seconds(5), recentWindow: .seconds(10))
        cache.streamAccepted(startedAt: start)
        return cache
    }

    func answer(_ subject: String = "alice", client: String = "rs", iat: Int64? = nil, exp: Int64? = nil, jti: String = "j", grant: String = "g") -> IntrospectionAnswer {
        IntrospectionAnswer(
            Tokend_V1_IntrospectResponse.with {
                $0.active = true
                $0.sub = subject
                $0.clientID = client
                $0.iat = iat ?? Int64(unix) - 10
                $0.exp = exp ?? Int64(unix) + 3600
                $0.jti = jti
                $0.grantID = grant
            },
            fromCache: false
        )
    }

    func event(_ seq: Int64, _ kind: String, _ selector: String = "", hashes: [String] = [], issuedBefore: Int64 = 0) -> Tokend_V1_RevocationEvent {
        .with {
            $0.seq = seq
            $0.kind = kind
            $0.selector = selector
            $0.tokenHashes = hashes.map { Data(SHA256.hash(data: Array($0.utf8))) }
            $0.issuedBefore = issuedBefore
        }
    }

    @Test func answersOnlyWhileConfirmedAndBeforeExp() {
        var cache = cache()
        let key = TokenDigest(token: "t")
        do {
            let holds = cache.store(answer(exp: Int64(unix) + 2), for: key, sentWith: cache.ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        do {
            let holds = cache.answer(for: key, at: start + .seconds(1), unixNow: unix)?.fromCache == true
            #expect(holds)
        }
        // Past maxStaleness since the stream was last known live: no answer, until confirmed again.
        do {
            let holds = cache.answer(for: key, at: start + .seconds(6), unixNow: unix) == nil
            #expect(holds)
        }
        cache.confirmLive(sentAt: start + .seconds(4), sentWith: cache.ticket)
        do {
            let holds = cache.answer(for: key, at: start + .seconds(6), unixNow: unix) != nil
            #expect(holds)
        }
        // exp is exclusive.
        do {
            let holds = cache.answer(for: key, at: start + .seconds(6), unixNow: unix + 1.999) != nil
            #expect(holds)
        }
        do {
            let holds = cache.answer(for: key, at: start + .seconds(6), unixNow: unix + 2) == nil
            #expect(holds)
        }
    }

    @Test func inactiveAnswersAndAnswersFromAnotherConnectionAreNotStored() {
        var cache = cache()
        var inactive = answer()
        inactive.active = false
        do {
            let holds = !cache.store(inactive, for: TokenDigest(token: "i"), sentWith: cache.ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        let ticket = cache.ticket
        cache.streamEnded()
        do {
            let holds = !cache.store(answer(), for: TokenDigest(token: "a"), sentWith: ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        cache.streamAccepted(startedAt: start)
        // Sent before the reconnect: its answer may predate catch-up entries.
        do {
            let holds = !cache.store(answer(), for: TokenDigest(token: "a"), sentWith: ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        do {
            let holds = cache.store(answer(), for: TokenDigest(token: "a"), sentWith: cache.ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        // A reconnect empties the cache.
        cache.streamEnded()
        cache.streamAccepted(startedAt: start)
        #expect(cache.entries.isEmpty)
    }

    @Test func eventsEvictByHashAndBySelector() {
        var cache = cache()
        let iat = Int64(unix) - 10
        let tokens: [(String, IntrospectionAnswer)] = [
            ("t1", answer("alice", iat: iat, jti: "j1", grant: "g1")),
            ("t2", answer("alice", iat: iat + 20, jti: "j2", grant: "g2")),  // issued after the rule below
            ("t3", answer("bob", client: "app2", iat: iat, jti: "j3", grant: "g3")),
            ("t4", answer("carol", iat: iat, jti: "j4", grant: "g4")),
            ("t5", answer("dave", iat: iat, jti: "j5", grant: "g5")),
        ]
        for (token, answer) in tokens {
            do {
                let holds = cache.store(answer, for: TokenDigest(token: token), sentWith: cache.ticket, at: start, unixNow: unix)
                #expect(holds)
            }
        }
        func cached(_ token: String) -> Bool { cache.entries[TokenDigest(token: token)] != nil }
        // Same second counts as covered.
        cache.apply(event(1, "subject", "alice", issuedBefore: iat), at: start)
        #expect(!cached("t1") && cached("t2"))
        cache.apply(event(2, "client", "app2", issuedBefore: iat + 100), at: start)
        #expect(!cached("t3"))
        cache.apply(event(3, "token", "j4", hashes: ["t4"]), at: start)
        #expect(!cached("t4"))
        // A grant entry without hashes still evicts by its grant_id.
        cache.apply(event(4, "grant", "g5"), at: start)
        #expect(!cached("t5") && cached("t2"))
        #expect(cache.lastSeq == 4 && cache.figures.evictions == 4)
        // A kind this library does not know empties the cache.
        cache.apply(event(5, "something-new", "x"), at: start)
        #expect(cache.entries.isEmpty)
    }

    @Test func aRecentRevocationRefusesAnAnswerThatArrivesAfterIt() {
        var cache = cache()
        let ticket = cache.ticket
        // The event was applied before the answer (computed by a view that had not applied it yet) came back.
        cache.apply(event(1, "token", "j1", hashes: ["t1"]), at: start)
        do {
            let holds = !cache.store(answer(jti: "j1"), for: TokenDigest(token: "t1"), sentWith: ticket, at: start + .seconds(1), unixNow: unix)
            #expect(holds)
        }
        cache.apply(event(2, "subject", "alice", issuedBefore: Int64(unix)), at: start)
        do {
            let holds = !cache.store(answer("alice", jti: "j2"), for: TokenDigest(token: "t2"), sentWith: ticket, at: start + .seconds(1), unixNow: unix)
            #expect(holds)
        }
        // Tokens issued after the rule, and after the window, are stored again.
        do {
            let holds = cache.store(answer("alice", iat: Int64(unix) + 1, jti: "j3"), for: TokenDigest(token: "t3"), sentWith: ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        do {
            let holds = cache.store(answer("alice", jti: "j2"), for: TokenDigest(token: "t2"), sentWith: ticket, at: start + .seconds(11), unixNow: unix)
            #expect(holds)
        }
    }

    @Test func outOfRangeFollowsFromZeroWithAnEmptyCache() {
        var cache = cache()
        cache.apply(event(7, "token", "other", hashes: ["x"]), at: start)
        do {
            let holds = cache.store(answer(), for: TokenDigest(token: "a"), sentWith: cache.ticket, at: start, unixNow: unix)
            #expect(holds)
        }
        cache.streamEnded()
        cache.restartFromSnapshot()
        #expect(cache.lastSeq == 0 && cache.entries.isEmpty && cache.figures.snapshots == 1)
    }

    @Test func theCacheIsBounded() {
        var cache = cache(capacity: 3)
        for i in 0..<10 {
            do {
                let holds = cache.store(answer(jti: "j\(i)"), for: TokenDigest(token: "t\(i)"), sentWith: cache.ticket, at: start, unixNow: unix)
                #expect(holds)
            }
        }
        #expect(cache.entries.count == 3)
    }
}
