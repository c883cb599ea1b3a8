import Foundation
import Testing
import TokendTestSupport

/// What an operator reads: the JSON access log and the store/pool metrics, from a real
/// `tokend serve` on PostgreSQL.
@Suite(.serialized) struct OperationsTests {
    /// One JSON line per request with request id, route, status, duration and the caller's
    /// client_id; never a token, a client secret, the admin token or an Authorization value.
    @Test func jsonAccessLogLinesCarryTheRequestAndNoSecret() async throws {
        try await Cluster.run(replicas: 1, environment: ["TOKEND_LOG_LEVEL": "info"]) { replicas, _ in
            let a = replicas[0]
            let rs = try await a.createClient("log-rs", roles: ["introspect"])
            let issued = try await a.issue(client: "log-rs", subject: "alice", refresh: true)
            #expect(try await a.introspect(issued.accessToken, as: rs).status == 200)
            // Through curl: URLSession on Linux stalls on a 401 that carries WWW-Authenticate.
            let refusedCall = try run(
                URL(fileURLWithPath: "/usr/bin/env"),
                [
                    "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-u", "log-rs:not-the-secret",
                    "--data-urlencode", "token=\(issued.accessToken)", a.publicURL + "/oauth2/introspect",
                ]
            )
            #expect(refusedCall.stdout == "401")
            #expect(try await a.revoke(issued.refreshToken!, as: rs).status == 200)
            // A request whose URL itself carries a token: the route is logged, never the query.
            let leaked = try await ClusterHTTP.send(a.publicURL + "/oauth2/introspect?token=\(issued.accessToken)", method: "GET")
            #expect(leaked.status >= 400)

            var lines: [[String: Any]] = []
            try await eventually("access log lines written", within: .seconds(5)) {
                lines = a.log.split(separator: "\n").compactMap { line in
                    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
                }.filter { $0["msg"] as? String == "request" }
                return lines.count >= 6
            }
            // Every line of the log is JSON (nothing printed around it).
            for line in a.log.split(separator: "\n") {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not JSON: \(line.prefix(200))")
            }
            let introspections = lines.filter { $0["route"] as? String == "/oauth2/introspect" && $0["method"] as? String == "POST" }
            #expect(introspections.count == 2)
            for line in lines {
                for key in ["request_id", "route", "status", "duration_ms", "listener", "method", "ts", "level"] {
                    #expect(line[key] != nil, "request line without \(key): \(line)")
                }
                #expect(Double(line["duration_ms"] as? String ?? "") != nil, "duration_ms is a number: \(line)")
            }
            let ok = try #require(introspections.first { $0["status"] as? String == "200" })
            #expect(ok["client_id"] as? String == "log-rs")
            #expect(ok["listener"] as? String == "public")
            let refused = try #require(introspections.first { $0["status"] as? String == "401" })
            #expect(refused["client_id"] == nil || refused["client_id"] as? String == "log-rs")
            let revoke = try #require(lines.first { $0["route"] as? String == "/oauth2/revoke" })
            #expect(revoke["client_id"] as? String == "log-rs" && revoke["status"] as? String == "200")
            let admin = lines.filter { $0["listener"] as? String == "admin" }
            #expect(admin.contains { ($0["route"] as? String ?? "").contains("AdminService/IssueToken") })
            let ids = lines.compactMap { $0["request_id"] as? String }
            #expect(Set(ids).count == ids.count, "request ids are unique")

            let log = a.log
            for secret in [
                issued.accessToken, issued.refreshToken!, rs.secret, Cluster.adminToken, "not-the-secret",
                String(rs.basic.dropFirst("Basic ".count)),
            ] {
                #expect(!log.contains(secret), "the log holds a secret")
            }
            #expect(!log.contains("Creating new connection"), "the pool's debug events, which the pool metrics count, stay below the chosen level")
        }
    }

    /// `tokend_store_*`: calls, in flight, and the PostgreSQL pool (connections, attempts,
    /// coalesced lookups) after database-path introspections.
    @Test func storeAndPoolMetricsReflectDatabaseWork() async throws {
        try await Cluster.run(replicas: 1, environment: ["TOKEND_CACHE_ENTRIES": "0"]) { replicas, _ in
            let a = replicas[0]
            let rs = try await a.createClient("pool-rs", roles: ["introspect"])
            var tokens: [String] = []
            for i in 0..<20 { tokens.append(try await a.issue(client: "pool-rs", subject: "s\(i)").accessToken) }
            let callsBefore = try await a.metric("tokend_store_calls_total")
            let batchesBefore = try await a.metric("tokend_store_lookup_batches_total")
            // Start-up may count failures (the feed reads the log before migrations are applied).
            let failuresBefore = try await a.metric("tokend_store_call_failures_total")
            let issuedTokens = tokens
            let answers = try await concurrentMap(200, width: 32) { i in try await a.introspect(issuedTokens[i % issuedTokens.count], as: rs).status }
            #expect(answers.allSatisfy { $0 == 200 })

            // 20 per replica: 18 in the pool, 2 of the fast path's reader.
            #expect(try await a.metric("tokend_store_pool_connections_max") == 18)
            #expect(try await a.metric("tokend_store_pool_connections_open") >= 1)
            #expect(try await a.metric("tokend_store_pool_connections_open") <= 18)
            #expect(try await a.metric("tokend_store_pool_connect_attempts_total") >= a.metric("tokend_store_pool_connections_open"))
            #expect(try await a.metric("tokend_store_pool_connect_failures_total") == 0)
            #expect(try await a.metric("tokend_store_calls_in_flight") == 0)
            // No store call was given up here; on a busy machine one may time out, and its work
            // ends once its connection is closed.
            try await poll(until: "no abandoned store call is still running") { try await a.metric("tokend_store_abandoned_calls") == 0 }
            // 200 introspections each looked the token up (the client record is cached): the fast
            // path's reads, one store call per batch of them.
            let batches = try await a.metric("tokend_store_lookup_batches_total") - batchesBefore
            let looked = try await a.metric("tokend_store_batched_lookups_total")
            #expect(batches >= 1 && batches <= 200)
            #expect(try await a.metric("tokend_store_calls_total") - callsBefore >= batches)
            #expect(looked >= batches)
            #expect(try await a.metric("tokend_store_call_failures_total") == failuresBefore)

        }
    }
}
