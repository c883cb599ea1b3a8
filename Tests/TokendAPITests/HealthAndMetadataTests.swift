import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TokendAPI
import TokendCore
import TokendProto
import TokendTestSupport

/// `/healthz`, `/readyz`, RFC 8414 metadata, unknown routes, and a real socket.
@Suite struct HealthAndMetadataTests {
    @Test(arguments: StoreKind.allCases)
    func healthAndReadinessWithAWorkingStore(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            for router in [h.services.publicRouter(), h.services.adminRouter()] {
                let app = Application(router: router, logger: TestEnvironment.logger)
                try await app.test(.router) { client in
                    let health = try await client.send("/healthz", method: .get)
                    #expect(health.status == .ok)
                    #expect(health.headers[.contentType] == "application/json")
                    #expect(health.json?["status"] == "ok")
                    let ready = try await client.send("/readyz", method: .get)
                    #expect(ready.status == .ok)
                    #expect(ready.json?["status"] == "ready", "\(ready.text)")
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func readinessFailsWithAReasonWhenTheStoreDoesNotAnswer(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let services = h.storeOnlyServices()
            try await h.takeDown()
            for router in [services.publicRouter(), services.adminRouter()] {
                let app = Application(router: router, logger: TestEnvironment.logger)
                try await app.test(.router) { client in
                    let ready = try await client.send("/readyz", method: .get)
                    #expect(ready.status == .serviceUnavailable)
                    #expect(ready.headers[.contentType] == "application/json")
                    #expect(ready.json?["status"] == "unavailable", "\(ready.text)")
                    #expect((ready.json?["reason"]?.string ?? "").isEmpty == false, "\(ready.text)")
                    #expect(ready.json?["reason"] == "the token store does not answer", "no driver error: \(ready.text)")
                    // The process still serves.
                    let health = try await client.send("/healthz", method: .get)
                    #expect(health.status == .ok)
                }
            }
        }
    }

    @Test func readinessReportsWhatTheReplicaSays() async throws {
        try await withHarness(.sqlite) { h in
            // A replica whose feed has not read the log yet is not ready, and says why.
            let services = Services(store: h.store, now: h.clock.now)
            try await withPublicRouter(services) { client in
                let ready = try await client.send("/readyz", method: .get)
                #expect(ready.status == .serviceUnavailable)
                #expect(ready.json?["reason"] == "the revocation log has not been loaded yet")
                try await services.replica.feed?.sync()
                #expect(try await client.send("/readyz", method: .get).status == .ok)
                // Past TOKEND_MAX_STALENESS without a confirmed sync: out of sync.
                h.clock.advance(by: 6)
                let stale = try await client.send("/readyz", method: .get)
                #expect(stale.status == .serviceUnavailable)
                #expect(stale.json?["reason"] == "the revocation feed is out of sync")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func authorizationServerMetadata(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            try await withPublicRouter(h.services) { client in
                let response = try await client.send("/.well-known/oauth-authorization-server", method: .get)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let methods: JSON = ["client_secret_basic", "client_secret_post"]
                #expect(
                    response.json == [
                        "issuer": .string(testIssuerURL),
                        "introspection_endpoint": .string(testIssuerURL + "/oauth2/introspect"),
                        "introspection_endpoint_auth_methods_supported": methods,
                        "revocation_endpoint": .string(testIssuerURL + "/oauth2/revoke"),
                        "revocation_endpoint_auth_methods_supported": methods,
                        "token_endpoint": .string(testIssuerURL + "/oauth2/token"),
                        "token_endpoint_auth_methods_supported": methods,
                        "grant_types_supported": ["client_credentials", "refresh_token"],
                        "jwks_uri": .string(testIssuerURL + "/.well-known/jwks.json"),
                        "introspection_signing_alg_values_supported": ["ES256"],
                    ],
                    "\(response.text)"
                )
            }
        }
        // A trailing slash in the issuer does not double the slash in the endpoints.
        try await withHarness(.sqlite) { h in
            let services = Services(store: h.store, issuerURL: "https://tokend.test/", now: h.clock.now)
            try await withPublicRouter(services) { client in
                let response = try await client.send("/.well-known/oauth-authorization-server", method: .get)
                #expect(response.json?["introspection_endpoint"] == "https://tokend.test/oauth2/introspect")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func unknownRoutesAre404WithAJSONBody(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let cases: [(String, HTTPRequest.Method)] = [
                ("/", .get), ("/nope", .get), ("/oauth2/authorize", .get), ("/oauth2/introspect/extra", .post),
                ("/.well-known/openid-configuration", .get), ("/tokend.v1.Nope/Nope", .post), ("/metrics/x", .get),
            ]
            try await withPublicRouter(h.services) { client in
                for (uri, method) in cases {
                    let response = try await client.send(uri, method: method)
                    #expect(response.status == .notFound, "\(method) \(uri): \(response.status.code)")
                    #expect(response.json?.object?.isEmpty == false, "\(method) \(uri): \(response.text)")
                    #expect(!response.text.lowercased().contains("<html"))
                }
                // Admin methods do not exist on the public listener.
                let admin = try await client.send("/tokend.v1.AdminService/Status", headers: [.contentType: "application/proto"])
                #expect(admin.status == .notFound)
            }
            try await withAdminRouter(h.services) { client in
                for (uri, method) in cases {
                    let response = try await client.send(uri, method: method)
                    #expect(response.status == .notFound, "admin \(method) \(uri): \(response.status.code)")
                }
                // The OAuth endpoints are not on the admin listener.
                let introspect = try await client.send("/oauth2/introspect", headers: formHeaders, body: formBody(["token": "x"]))
                #expect(introspect.status == .notFound)
            }
        }
    }

    /// A sweep over every route, method, content type, credential and a few hostile bodies: no
    /// combination answers 500, and every error is a JSON object (checked in `send`).
    @Test(arguments: StoreKind.allCases)
    func noRequestAnywhereAnswers500(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect, .issue, .revoke])
            let token = try await h.issue(IssueRequest(clientID: "rs", refresh: true)).accessToken
            let paths = [
                "/oauth2/introspect", "/oauth2/revoke", "/.well-known/oauth-authorization-server", "/healthz", "/readyz",
                "/tokend.v1.IntrospectionService/Introspect", "/tokend.v1.IntrospectionService/Revoke", "/tokend.v1.TokenService/IssueToken",
                "/tokend.v1.AdminService/CreateClient", "/tokend.v1.AdminService/ListClients", "/tokend.v1.AdminService/DeleteClient",
                "/tokend.v1.AdminService/RotateClientSecret", "/tokend.v1.AdminService/IssueToken", "/tokend.v1.AdminService/Introspect",
                "/tokend.v1.AdminService/Revoke", "/tokend.v1.AdminService/ListRevocations", "/tokend.v1.AdminService/Status",
                "/tokend.v1.AdminService/ListAuditEvents",
                "/metrics", "/nope", "/oauth2/introspect?token=\(token)", "//oauth2//introspect", "/%ZZ",
            ]
            let methods: [HTTPRequest.Method] = [.get, .post, .patch]
            let contentTypes: [String?] = [nil, "application/x-www-form-urlencoded", "application/proto", "application/json", "text/plain"]
            let authorizations: [String?] = [nil, rs.basic, "Bearer \(testAdminToken)"]
            let bodies: [ByteBuffer?] = [
                nil, ByteBuffer(string: "token=\(token)"), ByteBuffer(bytes: [0xFF, 0x00, 0xC3, 0x28, 0x0A, 0x80]),
                ByteBuffer(string: #"{"token":"\#(token)","client_id":"x","roles":["issue"],"subject":"s"}"#),
            ]
            // The answers by status, over both listeners: the sweep must reach the handlers (answers
            // of every kind, not only 404s), and nothing may be a 5xx (no store outage here).
            var statuses: [Int: Int] = [:]
            for router in [h.services.publicRouter(), h.services.adminRouter()] {
                let app = Application(router: router, logger: TestEnvironment.logger)
                let seen = try await app.test(.router) { client in
                    var seen: [Int: Int] = [:]
                    for path in paths {
                        for method in methods {
                            for contentType in contentTypes {
                                for authorization in authorizations {
                                    for body in bodies {
                                        var headers = HTTPFields()
                                        if let contentType { headers[.contentType] = contentType }
                                        if let authorization { headers[.authorization] = authorization }
                                        let response = try await client.send(path, method: method, headers: headers, body: body)
                                        #expect(!response.text.contains(token), "\(method) \(path) echoes the token")
                                        seen[response.status.code, default: 0] += 1
                                    }
                                }
                            }
                        }
                    }
                    return seen
                }
                statuses.merge(seen, uniquingKeysWith: +)
            }
            // The server's own count, by status, of the requests its listeners answered
            // (`tokend_http_requests_total`, kept by the access log): exactly what the sweep saw,
            // so no request was lost on the way or answered outside the middleware.
            var counted: [Int: Int] = [:]
            for line in h.services.metrics.exposition().split(separator: "\n") where line.hasPrefix("tokend_http_requests_total{") {
                guard let label = line.range(of: #"status=""#), let status = Int(line[label.upperBound...].prefix(while: \.isNumber)),
                    let value = line.split(separator: " ").last.flatMap({ Double($0) })
                else { continue }
                counted[status, default: 0] += Int(value)
            }
            #expect(counted == statuses, "server: \(counted.sorted { $0.key < $1.key }), sweep: \(statuses.sorted { $0.key < $1.key })")
            #expect(statuses.keys.allSatisfy { $0 < 500 }, "\(statuses.sorted { $0.key < $1.key })")
            for expected in [200, 400, 401, 404, 415] {
                #expect((statuses[expected] ?? 0) > 0, "no \(expected) in the sweep: \(statuses.sorted { $0.key < $1.key })")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func introspectOverARealSocket(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "live-user", scope: "read"))
            let app = Application(router: h.services.publicRouter(), logger: TestEnvironment.logger)
            try await app.test(.live) { client in
                #expect(client.port != nil)
                let response = try await client.introspect(issued.accessToken, as: rs)
                #expect(response.status == .ok)
                #expect(response.headers[.cacheControl] == "no-store")
                #expect(response.json?["active"] == true)
                #expect(response.json?["sub"] == "live-user")
                #expect(response.json?["scope"] == "read")

                let revoke = try await client.revoke(issued.accessToken, as: owner)
                #expect(revoke.status == .ok && revoke.body.readableBytes == 0)
                let after = try await client.introspect(issued.accessToken, as: rs)
                #expect(after.json == ["active": false], "\(after.text)")

                let anonymous = try await client.send("/oauth2/introspect", headers: formHeaders, body: formBody(["token": issued.accessToken]))
                anonymous.expectOAuthError(.unauthorized, "invalid_client")
                #expect(anonymous.headers[.wwwAuthenticate] == #"Basic realm="tokend""#)

                let tooLarge = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders(rs),
                    body: ByteBuffer(repeating: UInt8(ascii: "a"), count: 64 * 1024 + 1)
                )
                #expect(tooLarge.status == .contentTooLarge)
            }
        }
    }
}

@Suite struct MetricsEndpointTests {
    @Test func metricsUseThePrometheusTextFormatAndCountRequests() async throws {
        try await withHarness(.sqlite) { h in
            let rs = try await h.caller("rs", [.introspect])
            let issued = try await h.issue(IssueRequest(clientID: "rs", subject: "alice"))
            try await withPublicRouter(h.services) { client in
                for _ in 0..<3 {
                    try await client.execute(
                        uri: "/oauth2/introspect",
                        method: .post,
                        headers: [.authorization: rs.basic, .contentType: "application/x-www-form-urlencoded"],
                        body: ByteBuffer(string: "token=\(issued.accessToken)")
                    ) { response in
                        #expect(response.status == .ok)
                    }
                }
            }
            try await withAdminRouter(h.services) { client in
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                    let text = String(buffer: response.body)
                    #expect(text.contains("# TYPE tokend_http_requests_total counter"))
                    #expect(text.contains(#"tokend_http_requests_total{listener="public",route="/oauth2/introspect",status="200"} 3"#))
                    #expect(text.contains("tokend_introspections_total"))
                    #expect(text.contains(#"source="memory""#), "the second and third answers came from memory")
                    for name in [
                        "tokend_revocation_watermark", "tokend_revocation_sync_age_seconds", "tokend_memory_fresh 1",
                        "tokend_cache_entries 1", "tokend_cache_bytes ", "tokend_filter_bits_per_entry",
                        "tokend_http_request_duration_seconds_bucket",
                    ] {
                        #expect(text.contains(name), "missing \(name)")
                    }
                    #expect(!text.contains(issued.accessToken))
                }
            }
        }
    }
}
