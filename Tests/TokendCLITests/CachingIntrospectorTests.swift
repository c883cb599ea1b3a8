import Foundation
import GRPCCore
import Testing
import TokendClient
import TokendTestSupport

#if canImport(Glibc)
import Glibc
#endif

extension ClusterSuites {
    /// Issue 13, item 4: `TokendClient.CachingIntrospector` against real tokend processes. A cached
    /// active answer costs no call to tokend; a revocation through another replica (by token, jti,
    /// grant, subject or client) evicts it within a bound; no answer outlives `exp`; a silent or
    /// killed server stops the cache within its bound, and then the client errors; `OUT_OF_RANGE`
    /// restarts the stream from a snapshot.
    @Suite(.serialized) struct CachingIntrospectorTests {
        static let maxStaleness: Duration = .seconds(2)
        static let common = ["TOKEND_MAX_STALENESS": "2s"]

        @Test func cachedAnswersCostNoCallAndRevocationsThroughAnotherReplicaEvictThem() async throws {
            try await Cluster.run(replicas: 2, environment: Self.common) { replicas, _ in
                let (a, b) = (replicas[0], replicas[1])
                let rs = try await b.createClient("rs", roles: ["introspect", "revoke"])
                _ = try await b.createClient("app2", roles: ["issue"])
                try await withIntrospector(a, as: rs) { introspector in
                    try await Self.cachedAnswersCostNoCall(introspector, a, b)
                    try await Self.revocationsEvict(introspector, b, rs)
                    try await Self.selectorRevocationsEvict(introspector, b)
                }
            }
        }

        @Test func noAnswerOutlivesExpOrAStoppedServer() async throws {
            try await Cluster.run(replicas: 1, environment: Self.common) { replicas, _ in
                let a = replicas[0]
                let rs = try await a.createClient("rs", roles: ["introspect", "revoke"])
                try await withIntrospector(a, as: rs) { introspector in
                    try await Self.neverPastExp(introspector, a)
                    try await Self.aSilentServerStopsTheCache(introspector, a)
                    try await Self.aKilledServerStopsTheCache(introspector, a)
                }
            }
        }

        @Test func outOfRangeRestartsFromASnapshot() async throws {
            let (database, url) = try await createDatabase()
            let result: Result<Void, any Error>
            do {
                try await Self.outOfRange(databaseURL: url)
                result = .success(())
            } catch {
                result = .failure(error)
            }
            try await dropDatabase(database)
            try result.get()
        }

        // MARK: The cache and eviction

        /// 20 tokens introspected once each (calls), then 10 times more each: every later answer from
        /// the cache, and tokend's own introspection counters do not move. Inactive answers are not cached.
        static func cachedAnswersCostNoCall(_ introspector: CachingIntrospector, _ a: Replica, _ b: Replica) async throws {
            let tokens = try await concurrentMap(20, width: 8) { i in try await b.issue(client: "rs", subject: "cached-\(i)").accessToken }
            for token in tokens {
                let answer = try await introspector.introspect(token)
                #expect(answer.active && !answer.fromCache && answer.subject.hasPrefix("cached-"))
            }
            let before = introspector.figures
            let calls = try await introspectionsServed(a)
            for _ in 0..<10 {
                for token in tokens {
                    let answer = try await introspector.introspect(token)
                    #expect(answer.active && answer.fromCache)
                }
            }
            #expect(try await introspectionsServed(a) == calls, "tokend was asked although the cache held the answers")
            let after = introspector.figures
            #expect(after.hits - before.hits == 200 && after.misses == before.misses, "\(after)")

            // Not cached: an unknown token is asked of tokend every time.
            let unknown = "tkd_at_" + String(repeating: "x", count: 43)
            for _ in 0..<2 {
                let answer = try await introspector.introspect(unknown)
                #expect(!answer.active && !answer.fromCache)
            }
            #expect(try await introspectionsServed(a) == calls + 2)
        }

        /// 200 cached tokens revoked one at a time through replica B (RFC 7009); the introspector
        /// follows replica A. Reports the time from B's acknowledgement until the cache no longer holds
        /// the answer, and then tokend answers `active:false`.
        static func revocationsEvict(_ introspector: CachingIntrospector, _ b: Replica, _ rs: ClientCredentials) async throws {
            let count = 200
            let tokens = try await concurrentMap(count, width: 8) { i in try await b.issue(client: "rs", subject: "evict-\(i)").accessToken }
            for token in tokens { #expect(try await introspector.introspect(token).active) }
            #expect(tokens.allSatisfy { introspector.cachedAnswer($0) != nil })
            let evictionsBefore = introspector.figures.evictions

            var latencies: [Double] = []
            var missed: [Int] = []
            for (i, token) in tokens.enumerated() {
                let answer = try await b.revoke(token, as: rs)
                let acknowledged = ContinuousClock.now
                #expect(answer.status == 200, "\(answer)")
                if let latency = try await timeUntilEvicted(introspector, token, since: acknowledged) {
                    latencies.append(latency.milliseconds)
                } else {
                    missed.append(i)
                }
            }
            latencies.sort()
            print("TokendClient eviction by token through another replica: \(latencySummary(latencies)); \(missed.count) missed")
            #expect(missed.isEmpty, "still cached 2 s after the revocation: tokens \(missed.prefix(5))")
            // SPEC's 100 ms at p99 is the replicas' bound (the bench measures it on a release build); a
            // debug build on a shared machine gets a ceiling only a client that stops evicting breaks.
            #expect(percentile(latencies, 0.99) < 250, "p99: \(latencySummary(latencies))")
            #expect(introspector.figures.evictions - evictionsBefore == count)
            for token in tokens.prefix(20) {
                try await eventually("tokend answers active:false", within: .seconds(2)) { try await !introspector.introspect(token).active }
                #expect(introspector.cachedAnswer(token) == nil)
            }
        }

        /// Admin revocations by jti, grant, subject and client (the last two: every token of theirs
        /// issued up to that moment) evict exactly the answers they cover.
        static func selectorRevocationsEvict(_ introspector: CachingIntrospector, _ b: Replica) async throws {
            let alice = try await concurrentMap(5, width: 5) { _ in try await b.issue(client: "rs", subject: "alice").accessToken }
            let app2 = try await concurrentMap(5, width: 5) { i in try await b.issue(client: "app2", subject: "app2-user-\(i)").accessToken }
            let granted = try await b.issue(client: "rs", subject: "granted", refresh: true)
            let byJTI = try await b.issue(client: "rs", subject: "by-jti")
            let bystander = try await b.issue(client: "rs", subject: "bob").accessToken
            for token in alice + app2 + [granted.accessToken, byJTI.accessToken, bystander] {
                #expect(try await introspector.introspect(token).active)
                #expect(introspector.cachedAnswer(token) != nil)
            }
            var latencies: [String] = []
            for (what, selector, covered) in [
                ("jti", ["jti": byJTI.jti], [byJTI.accessToken]),
                ("grant", ["grant_id": granted.grantID], [granted.accessToken]),
                ("subject", ["subject": "alice"], alice),
                ("client", ["client_id": "app2"], app2),
            ] {
                var body: [String: Any] = ["reason": "test"]
                body.merge(selector) { $1 }
                let answer = try await b.admin("Revoke", body)
                let acknowledged = ContinuousClock.now
                #expect(answer.status == 200, "\(what): \(answer)")
                var slowest = Duration.zero
                for token in covered {
                    let latency = try await timeUntilEvicted(introspector, token, since: acknowledged)
                    #expect(latency != nil, "\(what): a covered answer still cached 2 s after the revocation")
                    slowest = max(slowest, latency ?? .seconds(2))
                }
                latencies.append("\(what) \(formatMS(slowest.milliseconds))")
            }
            print("TokendClient eviction by selector through another replica (slowest covered answer): \(latencies.joined(separator: ", "))")
            #expect(introspector.cachedAnswer(bystander) != nil, "an answer no revocation covers was evicted")
            for token in alice + app2 {
                try await eventually("tokend answers active:false", within: .seconds(2)) { try await !introspector.introspect(token).active }
            }
        }

        // MARK: Bounds

        /// A token with a 6 s lifetime: answered from the cache until `exp`, never at or after it. (With
        /// 2 s, a CI run under load spent the whole lifetime between issuing and the first answer.)
        static func neverPastExp(_ introspector: CachingIntrospector, _ a: Replica) async throws {
            let issued = try await a.admin("IssueToken", ["client_id": "rs", "subject": "short", "ttl_seconds": 6])
            let token = try #require(issued.json["access_token"] as? String, "\(issued)")
            let answer = try await introspector.introspect(token)
            #expect(answer.active)
            let exp = Double(answer.expiresAt)
            var hitsBefore = 0
            var wrong: [Double] = []
            while Date().timeIntervalSince1970 < exp + 0.5 {
                let at = Date().timeIntervalSince1970
                if introspector.cachedAnswer(token) != nil {
                    if at >= exp { wrong.append(at - exp) } else { hitsBefore += 1 }
                }
                try await Task.sleep(for: .milliseconds(5))  // sampling the cache over time, not waiting for a condition
            }
            #expect(wrong.isEmpty, "answered from the cache \(wrong.prefix(3)) s after exp")
            #expect(hitsBefore > 0, "the answer was never served from the cache before exp")
            let late = try await introspector.introspect(token)
            #expect(!late.active && !late.fromCache)
        }

        /// A token issued through `a`, introspected once and so held in the introspector's cache.
        static func cachedToken(_ introspector: CachingIntrospector, _ a: Replica, subject: String) async throws -> String {
            let token = try await a.issue(client: "rs", subject: subject).accessToken
            #expect(try await introspector.introspect(token).active)
            #expect(introspector.cachedAnswer(token) != nil)
            return token
        }

        /// SIGSTOP: the server is silent (no reset, no UNAVAILABLE). The cache answers no longer than
        /// `maxStaleness` after the server was last known live, then calls fail (deadline); SIGCONT brings
        /// it back.
        static func aSilentServerStopsTheCache(_ introspector: CachingIntrospector, _ a: Replica) async throws {
            let token = try await cachedToken(introspector, a, subject: "silent")
            let stoppedAt = ContinuousClock.now
            #expect(kill(a.pid, SIGSTOP) == 0)
            defer { _ = kill(a.pid, SIGCONT) }
            var lastHit: ContinuousClock.Instant?
            while ContinuousClock.now < stoppedAt + maxStaleness + .seconds(1) {
                let at = ContinuousClock.now
                if introspector.cachedAnswer(token) != nil { lastHit = at }
                try await Task.sleep(for: .milliseconds(5))  // sampling the cache over time
            }
            let servedFor = (lastHit ?? stoppedAt) - stoppedAt
            print("TokendClient, server stopped (SIGSTOP): answered from the cache for \(formatMS(servedFor.milliseconds)) (bound \(maxStaleness))")
            // Slack for the time between reading the clock and the signal's delivery.
            #expect(servedFor <= maxStaleness + .milliseconds(100))
            #expect(!introspector.figures.confirmed)
            await #expect(throws: RPCError.self) { try await introspector.introspect(token) }
            _ = kill(a.pid, SIGCONT)
            try await eventually("confirmed again after SIGCONT", within: .seconds(20)) { introspector.figures.confirmed }
            try await eventually("answers again", within: .seconds(10)) { (try? await introspector.introspect(token).active) == true }
        }

        /// SIGKILL: the connection is reset, the cache stops at once, and calls fail.
        static func aKilledServerStopsTheCache(_ introspector: CachingIntrospector, _ a: Replica) async throws {
            let token = try await cachedToken(introspector, a, subject: "killed")
            let killedAt = ContinuousClock.now
            #expect(kill(a.pid, SIGKILL) == 0)
            try await eventually("the cache stops answering", within: maxStaleness) { introspector.cachedAnswer(token) == nil }
            print("TokendClient, server killed (SIGKILL): the cache stopped after \(formatMS((ContinuousClock.now - killedAt).milliseconds))")
            #expect(!introspector.figures.connected)
            await #expect(throws: RPCError.self) { try await introspector.introspect(token) }
        }

        // MARK: OUT_OF_RANGE

        /// The introspector follows A; A is killed; meanwhile revocations are committed through B and
        /// the expired ones collected (`tokend gc`), so the introspector's `seq` is older than the
        /// retained log. A restarted on the same port answers `OUT_OF_RANGE`, and the introspector
        /// follows from a snapshot.
        static func outOfRange(databaseURL url: String) async throws {
            try await Cluster.run(replicas: 1, databaseURL: url, environment: common, label: "B") { replicas in
                let b = replicas[0]
                let rs = try await b.createClient("rs", roles: ["introspect", "revoke"])
                var environment = common
                environment["TOKEND_DATABASE_URL"] = url
                environment["TOKEND_ADMIN_TOKEN"] = Cluster.adminToken
                let first = try TokendProcess(environment: environment)
                defer { first.stop() }
                let a = replica(first, "A")
                try await eventually("A ready", within: .seconds(20)) { (try? await a.readiness()) == 200 }
                try await withIntrospector(a, as: rs) { introspector in
                    let revokeShortLived = { (subject: String) async throws -> Int64 in
                        let issued = try await b.admin("IssueToken", ["client_id": "rs", "subject": subject, "ttl_seconds": 1])
                        let token = try #require(issued.json["access_token"] as? String, "\(issued)")
                        return try await seq(of: b.admin("Revoke", ["token": token]))
                    }
                    let s1 = try await revokeShortLived("short-1")
                    try await eventually("the introspector applied seq \(s1)", within: .seconds(5)) { introspector.figures.lastSeq >= s1 }
                    first.kill9()
                    try await eventually("the stream ends", within: .seconds(5)) { !introspector.figures.connected }

                    _ = try await revokeShortLived("short-2")
                    let kept = try await b.issue(client: "rs", subject: "kept").accessToken
                    let s3 = try await seq(of: b.admin("Revoke", ["token": kept]))
                    try await eventually("the short-lived tokens expired", within: .seconds(5), every: .milliseconds(100)) {
                        let collected = try run(Binaries.tokend, ["gc"], environment: ["TOKEND_DATABASE_URL": url])
                        let log = try await b.admin("ListRevocations", ["since": 0])
                        let entries = (log.json["entries"] as? [[String: Any]]) ?? []
                        return collected.status == 0 && entries.count == 1
                    }

                    var again = environment
                    again["TOKEND_GRPC_ADDR"] = String(a.grpcURL.dropFirst("http://".count))
                    let second = try TokendProcess(environment: again)
                    defer { second.stop() }
                    try await eventually("followed from a snapshot", within: .seconds(20)) {
                        let figures = introspector.figures
                        return figures.snapshots == 1 && figures.confirmed && figures.lastSeq >= s3
                    }
                    let answer = try await introspector.introspect(kept)
                    #expect(!answer.active && !answer.fromCache)
                }
            }
        }
    }
}

// MARK: Support

/// Runs `body` with a `CachingIntrospector` of `replica` (as `client`) running and confirmed,
/// `maxStaleness` 2 s, calls limited to 30 s (limits of 2 s and then 10 s failed fresh-clone CI
/// runs, where an introspection waited behind the parallel suites); then cancels it.
func withIntrospector(
    _ replica: Replica,
    as client: ClientCredentials,
    _ body: (CachingIntrospector) async throws -> Void
) async throws {
    var configuration = CachingIntrospector.Configuration(server: try UpstreamURL(replica.upstreamURL(as: client)))
    configuration.maxStaleness = ClusterSuites.CachingIntrospectorTests.maxStaleness
    configuration.callTimeout = .seconds(30)
    let introspector = try CachingIntrospector(configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await introspector.run() }
        try await eventually("the introspector is confirmed", within: .seconds(20)) { introspector.figures.confirmed }
        try await body(introspector)
        group.cancelAll()
        try await group.waitForAll()
    }
}

/// Polls every millisecond until the cache no longer holds `token`'s answer; `nil` after 2 s.
func timeUntilEvicted(_ introspector: CachingIntrospector, _ token: String, since: ContinuousClock.Instant) async throws -> Duration? {
    while ContinuousClock.now < since + .seconds(2) {
        if introspector.cachedAnswer(token) == nil { return ContinuousClock.now - since }
        try await Task.sleep(for: .milliseconds(1))
    }
    return nil
}

/// The sum of `tokend_introspections_total` over its labels.
func introspectionsServed(_ replica: Replica) async throws -> Double {
    let text = try await ClusterHTTP.send(replica.adminURL + "/metrics", method: "GET").text
    return text.split(separator: "\n").filter { $0.hasPrefix("tokend_introspections_total") }
        .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
}

/// `seq` of an AdminService/Revoke answer (int64: a JSON string).
func seq(of answer: HTTPAnswer) throws -> Int64 {
    let value = answer.json["seq"]
    guard answer.status == 200, let seq = (value as? String).flatMap({ Int64($0) }) ?? (value as? NSNumber)?.int64Value else {
        throw TestSetupError("Revoke: \(answer)")
    }
    return seq
}

func replica(_ process: TokendProcess, _ name: String) -> Replica {
    Replica(
        name: name, publicURL: process.publicURL, adminURL: process.adminURL, grpcURL: process.grpcURL,
        pid: process.process.processIdentifier, logURL: process.logURL
    )
}
