import Foundation
import Testing
import TokendTestSupport

extension ClusterSuites {
    /// Issue 13, standby mode (`TOKEND_READ_DATABASE_URL`): a real primary and a real hot standby
    /// (`pg_basebackup -R`), 1 replica on the primary and 2 reading from the standby. Revocations reach
    /// every replica within the bound; a token issued a moment ago is active on a standby replica at
    /// once (the primary fallback); and when the standby lags or stops, its replicas go stale, fall
    /// back to the primary or answer 503, and never answer a wrong `active:true`.
    @Suite(.serialized) struct StandbyTests {
        static let revocationCount = 2000
        /// `TOKEND_MAX_STALENESS` of the replicas: short, so that the lag and outage phases are quick.
        static let maxStaleness: Double = 2

        @Test func standbyReplicasAreRightThroughPropagationLagAndOutage() async throws {
            let primary = try await PrivatePostgres.start()
            defer { primary.destroy() }
            let standby = try await primary.startStandby()
            defer { standby.destroy() }
            let onStandby = ["TOKEND_READ_DATABASE_URL": standby.url, "TOKEND_LOG_POLL_INTERVAL": "20ms"]
            try await Cluster.run(
                replicas: 3,
                databaseURL: primary.url,
                environment: ["TOKEND_MAX_STALENESS": "\(Int(Self.maxStaleness))s"],
                perReplica: [[:], onStandby, onStandby]
            ) { replicas in
                let (a, b, c) = (replicas[0], replicas[1], replicas[2])
                let rs = try await a.createClient("rs", roles: ["introspect", "revoke"])

                // Status and readiness say which feed each replica follows, and the standby's lag.
                let statusA = try await a.admin("Status", [:])
                #expect(statusA.json["feed"] as? String == "listen", "\(statusA)")
                #expect(statusA.json["standby_replay_lag_seconds"] == nil, "\(statusA)")
                for replica in [b, c] {
                    let status = try await replica.admin("Status", [:])
                    #expect(status.json["feed"] as? String == "standby", "\(replica): \(status)")
                    let lag = try #require(status.json["standby_replay_lag_seconds"] as? Double, "\(replica): \(status)")
                    #expect(lag >= 0 && lag < Self.maxStaleness, "\(replica): \(status)")
                    let ready = try await replica.readinessAnswer()
                    #expect(ready.status == 200 && ready.json["standby_replay_lag_seconds"] is Double, "\(replica): \(ready)")
                }

                try await Self.propagation(replicas, rs)
                try await Self.replayPaused(primary: a, follower: b, standby: standby, rs)
                try await Self.standbyStopped(primary: a, follower: b, standby: standby, rs)
            }
        }

        /// 2,000 revocations through random replicas; each must turn `active:false` on the two others.
        static func propagation(_ replicas: [Replica], _ rs: ClientCredentials) async throws {
            let count = revocationCount
            let tokens = try await concurrentMap(count, width: 16) { i in
                try await replicas[i % 3].issue(client: "rs", subject: "user-\(i)").accessToken
            }
            let cached = try await concurrentMap(3 * count, width: 16) { i in
                try await replicas[i % 3].introspect(tokens[i / 3], as: rs)
            }
            #expect(cached.allSatisfy { $0.status == 200 && $0.active == true }, "\(cached.first { $0.active != true }?.description ?? "")")

            let started = ContinuousClock.now
            let (latencies, missed) = try await revokeThroughRandomReplicas(replicas, tokens, rs)
            let elapsed = ContinuousClock.now - started
            let (standbyLatencies, listenLatencies) = ((latencies[1] + latencies[2]).sorted(), latencies[0].sorted())
            print(
                "standby propagation: \(count) revocations through random replicas in \(String(format: "%.1f", elapsed.milliseconds / 1000)) s; "
                    + "to the standby replicas \(latencySummary(standbyLatencies)); to the LISTEN replica \(latencySummary(listenLatencies)); \(missed.count) missed"
            )
            #expect(missed.isEmpty, "\(missed.count) revocations not seen within 2 s, e.g. \(missed.prefix(3))")
            // The bench holds the target (p99 < 50 ms: replay lag plus the 20 ms poll, release build,
            // docs/BENCHMARKS.md). Here a debug build shares two cores with the rest of the suite, and
            // the tail is the machine's: beside two CPU hogs the standby replicas' p99 was 734 ms (the
            // LISTEN replica's 65 ms) with a p50 of 13 ms. So the test decides on what a feed that
            // stops polling (the 2 s ceiling on every revocation, above) or polls far too slowly (the
            // median: half the 20 ms interval plus replay when it works, 100 ms or more when it polls
            // ten times too slowly) would break; its p99 only against a ceiling above what the hogs
            // gave (1.5 s).
            #expect(percentile(standbyLatencies, 0.5) < 100, "standby propagation p50 \(latencySummary(standbyLatencies))")
            #expect(percentile(standbyLatencies, 0.99) < 1500, "standby propagation p99 \(latencySummary(standbyLatencies))")
        }

        /// Replay paused on the standby: a new token is still active on B (asked of the primary), and
        /// a token revoked on A is never active on B once `maxStaleness` has passed; B's readiness
        /// names the standby's lag.
        static func replayPaused(primary a: Replica, follower b: Replica, standby: PrivatePostgres, _ rs: ClientCredentials) async throws {
            let cachedBefore = try await a.issue(client: "rs", subject: "paused-old").accessToken
            #expect(try await b.introspect(cachedBefore, as: rs).active == true)
            let missingBefore = try await b.metric("tokend_standby_fallbacks_total", "reason=\"missing\"")
            _ = try await standby.sql("SELECT pg_wal_replay_pause()")

            let fresh = try await a.issue(client: "rs", subject: "paused-new").accessToken
            let answer = try await b.introspect(fresh, as: rs)
            #expect(answer.status == 200 && answer.active == true, "a token issued on the primary must be active on a standby replica at once: \(answer)")
            #expect(try await b.metric("tokend_standby_fallbacks_total", "reason=\"missing\"") > missingBefore)

            let revoked = try await a.revoke(cachedBefore, as: rs)
            #expect(revoked.status == 200, "\(revoked)")
            try await expectNeverActiveAfterStaleness(b, cachedBefore, rs, revokedAt: ContinuousClock.now, maxStaleness: maxStaleness, what: "replay paused")
            let notReady = try await b.readinessAnswer()
            #expect(notReady.status == 503 && (notReady.json["reason"] as? String ?? "").contains("standby"), "\(notReady)")
            #expect(notReady.json["standby_replay_lag_seconds"] as? Double ?? 0 >= maxStaleness, "\(notReady)")

            _ = try await standby.sql("SELECT pg_wal_replay_resume()")
            try await eventually("B ready again once replay resumes", within: .seconds(10)) { try await b.readiness() == 200 }
            #expect(try await b.introspect(cachedBefore, as: rs).active == false)
        }

        /// The standby stopped: B goes stale, answers from the primary (or 503), never a wrong
        /// `active:true`; started again, B is ready again.
        static func standbyStopped(primary a: Replica, follower b: Replica, standby: PrivatePostgres, _ rs: ClientCredentials) async throws {
            let live = try await a.issue(client: "rs", subject: "outage-live").accessToken
            let doomed = try await a.issue(client: "rs", subject: "outage-doomed").accessToken
            for token in [live, doomed] { #expect(try await b.introspect(token, as: rs).active == true) }
            try await standby.stop()
            let revoked = try await a.revoke(doomed, as: rs)
            #expect(revoked.status == 200, "\(revoked)")
            try await expectNeverActiveAfterStaleness(b, doomed, rs, revokedAt: ContinuousClock.now, maxStaleness: maxStaleness, what: "standby stopped")
            let stillLive = try await b.introspect(live, as: rs)
            #expect(stillLive.status == 503 || stillLive.active == true, "a live token on B with its standby down: \(stillLive)")
            #expect(try await b.readiness() == 503)
            let fallbacks =
                try await b.metric("tokend_standby_fallbacks_total", "reason=\"stale\"")
                + b.metric("tokend_standby_fallbacks_total", "reason=\"error\"")
            #expect(fallbacks > 0)

            try await standby.start()
            // postgres-nio's pool retries a failing connection after 100 ms × 1.25^(n−1), up to 60 s:
            // after a standby outage of half a minute or more the next attempt can be 10 to 60 s
            // away (a loaded run failed a 20 s bound). The bound is only against hanging.
            try await eventually("B ready again once the standby is back", within: .seconds(90)) { try await b.readiness() == 200 }
            #expect(try await b.introspect(doomed, as: rs).active == false)
            #expect(try await b.introspect(live, as: rs).active == true)
        }
    }
}
