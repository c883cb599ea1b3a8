import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import TokendAPI
import TokendCore
import TokendTestSupport

// `/authz` forward authentication as SPEC.md "Public listener" describes it, on both stores.

private let gatewayHeader = HTTPField.Name("X-Tokend-Authorization")!
private let upstreamNames = ["x-tokend-sub", "x-tokend-client-id", "x-tokend-scope", "x-tokend-aud", "x-tokend-exp", "x-tokend-username"]
private let missingChallenge = #"Bearer realm="tokend""#
private let invalidChallenge = #"Bearer realm="tokend", error="invalid_token""#
private let gatewayChallenge = #"Basic realm="tokend-gateway""#

extension TestClientProtocol {
    /// A forward-auth request as a gateway sends it: its own credentials in
    /// `X-Tokend-Authorization`, the end user's `Authorization` as the user sent it. Checks what
    /// holds for every `/authz` answer: never a 500, `Cache-Control: no-store`, an empty body for
    /// the end user's answers (200, Bearer 401, 403 insufficient_scope) and a JSON object for the
    /// gateway's own refusals.
    func authz(
        _ uri: String = "/authz",
        method: HTTPRequest.Method = .get,
        gateway: Caller?,
        authorization: String?,
        body: ByteBuffer? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let gateway { headers[gatewayHeader] = gateway.basic }
        if let authorization { headers[.authorization] = authorization }
        return try await authz(uri, method: method, headers: headers, body: body, sourceLocation: sourceLocation)
    }

    func authz(
        _ uri: String = "/authz",
        method: HTTPRequest.Method = .get,
        headers: HTTPFields,
        body: ByteBuffer? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        let response = try await execute(uri: uri, method: method, headers: headers, body: body)
        #expect(response.status.code != 500, "\(method) \(uri) answered 500", sourceLocation: sourceLocation)
        #expect(response.headers[.cacheControl] == "no-store", "\(method) \(uri) \(response.status.code)", sourceLocation: sourceLocation)
        let endUserAnswer = response.status == .ok || response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true
        if endUserAnswer {
            #expect(response.body.readableBytes == 0, "\(method) \(uri): body \(response.text)", sourceLocation: sourceLocation)
        } else {
            #expect(response.headers[.contentType] == "application/json", "\(method) \(uri)", sourceLocation: sourceLocation)
            #expect(response.json?.object != nil, "\(method) \(uri): \(response.text)", sourceLocation: sourceLocation)
        }
        if response.status != .ok {
            for name in upstreamNames {
                #expect(response.headers[HTTPField.Name(name)!] == nil, "\(name) on a \(response.status.code)", sourceLocation: sourceLocation)
            }
        }
        return response
    }
}

extension TestResponse {
    /// The `X-Tokend-*` headers of an answer, by lower-case name.
    var upstream: [String: String] {
        var headers: [String: String] = [:]
        for name in upstreamNames {
            if let value = self.headers[HTTPField.Name(name)!] { headers[name] = value }
        }
        return headers
    }

    /// Checks a denial of the end user: status and exact challenge.
    func expectDenied(_ status: HTTPResponse.Status, _ challenge: String, _ label: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == status, "\(label): \(self.status.code) \(text)", sourceLocation: sourceLocation)
        #expect(headers[.wwwAuthenticate] == challenge, "\(label): \(headers[.wwwAuthenticate] ?? "no challenge")", sourceLocation: sourceLocation)
    }
}

private func bearer(_ token: String) -> String { "Bearer " + token }

@Suite struct ForwardAuthTests {
    // MARK: Allowed

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func activeTokenPassesWithTheUpstreamHeaders(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let now = Int64(h.clock.now().timeIntervalSince1970)
            let full = try await h.issue(
                IssueRequest(
                    clientID: "app",
                    subject: "user-42",
                    username: "alice@example.com",
                    scope: "read write",
                    audiences: ["https://api.example", "orders"],
                    ttl: 600
                )
            )
            let bare = try await h.issue(IssueRequest(clientID: "app", subject: "svc"))
            try await withPublicRouter(h.services, over: transport) { client in
                let response = try await client.authz(gateway: gw, authorization: bearer(full.accessToken))
                #expect(response.status == .ok, "\(response.status.code) \(response.text)")
                #expect(response.headers[.wwwAuthenticate] == nil)
                #expect(
                    response.upstream == [
                        "x-tokend-sub": "user-42", "x-tokend-client-id": "app", "x-tokend-scope": "read write",
                        "x-tokend-aud": "https://api.example,orders", "x-tokend-exp": String(now + 600),
                        "x-tokend-username": "alice@example.com",
                    ]
                )
                // Unset claims send no header at all (a gateway then removes the client's copy).
                let minimal = try await client.authz(gateway: gw, authorization: bearer(bare.accessToken))
                #expect(minimal.status == .ok)
                #expect(minimal.upstream == ["x-tokend-sub": "svc", "x-tokend-client-id": "app", "x-tokend-exp": String(now + 3600)])
                // The scheme is case-insensitive (RFC 9110 §11.1) and blanks around the token are not part of it.
                let lower = try await client.authz(gateway: gw, authorization: "bearer   \(full.accessToken)  ")
                #expect(lower.status == .ok, "\(lower.status.code)")
                #expect(lower.upstream["x-tokend-sub"] == "user-42")
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func everyMethodAndEveryPathBelowAuthzIsServedAndBodiesAreIgnored(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "app", subject: "u", scope: "read")).accessToken
            let other = try await h.issue(IssueRequest(clientID: "app", subject: "someone-else")).accessToken
            let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options, HTTPRequest.Method("PROPFIND")!]
            // Envoy's HTTP ext_authz appends the original path and query; their parameters are the
            // application's (repeated, malformed, anything) and are ignored.
            let paths = ["/authz", "/authz/", "/authz/api/orders/7", "/authz/api/items?page=2&tag=a&tag=b&q=100%&scope"]
            try await withPublicRouter(h.services, over: transport) { client in
                for method in methods {
                    for path in paths {
                        let allowed = try await client.authz(path, method: method, gateway: gw, authorization: bearer(token))
                        #expect(allowed.status == .ok, "\(method) \(path): \(allowed.status.code) \(allowed.text)")
                        #expect(allowed.upstream["x-tokend-sub"] == "u", "\(method) \(path)")
                        let denied = try await client.authz(path, method: method, gateway: gw, authorization: nil)
                        denied.expectDenied(.unauthorized, missingChallenge, "\(method) \(path)")
                    }
                }
                // A body is never read: not even a form naming another token, nor one past the 64 KiB limit.
                let form = try await client.authz(
                    method: .post,
                    headers: [gatewayHeader: gw.basic, .authorization: bearer(token), .contentType: "application/x-www-form-urlencoded"],
                    body: formBody(["token": other])
                )
                #expect(form.upstream["x-tokend-sub"] == "u")
                let big = try await client.authz(
                    method: .put,
                    gateway: gw,
                    authorization: bearer(token),
                    body: ByteBuffer(repeating: UInt8(ascii: "A"), count: 1 << 20)
                )
                #expect(big.status == .ok, "\(big.status.code)")
                // Only /authz and below: neighbours are not forward auth.
                for path in ["/authzx", "/authz-foo", "/Authz", "/api/authz"] {
                    let response = try await client.send(path, method: .get, headers: [gatewayHeader: gw.basic, .authorization: bearer(token)])
                    #expect(response.status == .notFound, "\(path): \(response.status.code)")
                    #expect(response.headers[HTTPField.Name("x-tokend-sub")!] == nil)
                }
            }
        }
    }

    // MARK: Denied: the end user

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func noBearerTokenIs401WithoutAnErrorCode(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            try await withPublicRouter(h.services, over: transport) { client in
                // RFC 6750 §3.1: without any authentication information, no error code.
                for authorization: String? in [nil, "Basic " + Data("u:p".utf8).base64EncodedString(), "DPoP x", "Bearerx", ""] {
                    let response = try await client.authz(gateway: gw, authorization: authorization)
                    response.expectDenied(.unauthorized, missingChallenge, authorization ?? "none")
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func aTokenThatIsNotActiveIs401InvalidToken(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let live = try await h.issue(IssueRequest(clientID: "app", subject: "u"))
            let revoked = try await h.issue(IssueRequest(clientID: "app", subject: "u"))
            _ = try await h.services.revoker.revoke(.token(TokenHash(token: revoked.accessToken)), reason: "test")
            let expiring = try await h.issue(IssueRequest(clientID: "app", subject: "u", ttl: 60))
            let later = try await h.issue(IssueRequest(clientID: "app", subject: "u", notBefore: h.clock.now().addingTimeInterval(600)))
            let withRefresh = try await h.issue(IssueRequest(clientID: "app", subject: "u", refresh: true))
            let dpop = try await h.issue(
                IssueRequest(clientID: "app", subject: "u", confirmation: TokendCore.Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"))
            )
            let mtls = try await h.issue(
                IssueRequest(
                    clientID: "app",
                    subject: "u",
                    confirmation: TokendCore.Confirmation(x5tS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
                )
            )
            h.clock.advance(by: 60)
            let cases: [(String, String)] = [
                ("empty Bearer", "Bearer"),
                ("Bearer and blanks", "Bearer    "),
                ("unknown", bearer("tkd_at_" + String(repeating: "A", count: 43))),
                ("malformed", bearer("not-a-token")),
                ("two tokens", bearer(live.accessToken + " " + live.accessToken)),
                ("revoked", bearer(revoked.accessToken)),
                ("expired", bearer(expiring.accessToken)),
                ("not yet valid", bearer(later.accessToken)),
                // A refresh token is for the token endpoint only (RFC 6749 §1.5).
                ("refresh token", bearer(try #require(withRefresh.refreshToken))),
                // Sender-constrained tokens need a proof of possession /authz never sees.
                ("DPoP-bound", bearer(dpop.accessToken)),
                ("certificate-bound", bearer(mtls.accessToken)),
                // A 10 KB header: a token over 4 KiB is inactive (SPEC), so this is 401, not 431.
                ("10 KB token", bearer(String(repeating: "tkd_at_", count: 1500))),
            ]
            try await withPublicRouter(h.services, over: transport) { client in
                #expect(try await client.authz(gateway: gw, authorization: bearer(live.accessToken)).status == .ok)
                for (label, authorization) in cases {
                    let response = try await client.authz(gateway: gw, authorization: authorization)
                    response.expectDenied(.unauthorized, invalidChallenge, label)
                    #expect(!response.text.contains(live.accessToken), "\(label): the token is echoed")
                }
                // The same DPoP-bound token is active to introspection, which reports its binding.
                #expect(try await client.isActive(dpop.accessToken, as: gw))
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func revokingATokenDeniesItAtOnce(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            let app = try await h.caller("app", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "app", subject: "u"))
            try await withPublicRouter(h.services, over: transport) { client in
                #expect(try await client.authz(gateway: gw, authorization: bearer(issued.accessToken)).status == .ok)
                #expect(try await client.revoke(issued.accessToken, as: app).status == .ok)
                let after = try await client.authz(gateway: gw, authorization: bearer(issued.accessToken))
                after.expectDenied(.unauthorized, invalidChallenge, "after revocation")
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func audienceAndScopeInTheQueryNarrow(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            let ordersGateway = try await h.caller("orders-gateway", [.introspect], audiences: ["orders"])
            _ = try await h.caller("app", [.issue])
            let token = try await h.issue(
                IssueRequest(clientID: "app", subject: "u", scope: "orders:read orders:write", audiences: ["orders", "https://api.example"])
            ).accessToken
            let billing = try await h.issue(IssueRequest(clientID: "app", subject: "u", scope: "orders:read", audiences: ["billing"])).accessToken
            try await withPublicRouter(h.services, over: transport) { client in
                for query in [
                    "", "?audience=orders", "?audience=https%3A%2F%2Fapi.example", "?scope=orders:read", "?scope=orders:read+orders:write",
                    "?scope=orders%3Awrite%20orders%3Aread&audience=orders", "?scope=&audience=", "?scope",
                ] {
                    let response = try await client.authz("/authz" + query, gateway: gw, authorization: bearer(token))
                    #expect(response.status == .ok, "\(query): \(response.status.code) \(response.headers[.wwwAuthenticate] ?? "")")
                }
                // An audience the token lacks: the token is not valid here (RFC 6750 §3.1 invalid_token).
                for query in ["?audience=billing", "?audience=orders2", "?audience=ORDERS"] {
                    let response = try await client.authz("/authz" + query, gateway: gw, authorization: bearer(token))
                    response.expectDenied(.unauthorized, invalidChallenge, query)
                }
                // A scope the token lacks: 403 insufficient_scope naming every required scope.
                let admin = try await client.authz("/authz?scope=orders:read+admin", gateway: gw, authorization: bearer(token))
                admin.expectDenied(.forbidden, #"Bearer error="insufficient_scope", scope="orders:read admin""#, "admin")
                let partial = try await client.authz("/authz?scope=orders:write&audience=billing", gateway: gw, authorization: bearer(billing))
                partial.expectDenied(.forbidden, #"Bearer error="insufficient_scope", scope="orders:write""#, "billing")
                // Audience is checked before scope: a token for elsewhere is invalid, whatever its scopes.
                let elsewhere = try await client.authz("/authz?scope=admin&audience=nowhere", gateway: gw, authorization: bearer(token))
                elsewhere.expectDenied(.unauthorized, invalidChallenge, "nowhere")
                // The gateway client's own audiences apply too, and the query only narrows them.
                #expect(try await client.authz(gateway: ordersGateway, authorization: bearer(token)).status == .ok)
                try await client.authz(gateway: ordersGateway, authorization: bearer(billing)).expectDenied(.unauthorized, invalidChallenge)
                try await client.authz("/authz?audience=billing", gateway: ordersGateway, authorization: bearer(billing))
                    .expectDenied(.unauthorized, invalidChallenge, "narrowing cannot widen")
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func malformedRequirementsAre400(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "app", subject: "u", scope: "read")).accessToken
            try await withPublicRouter(h.services, over: transport) { client in
                for query in [
                    "?scope=read&scope=write", "?audience=a&audience=b", "?scope=%zz", "?scope=%FF", "?scope=a%22b", "?scope=a%5Cb",
                    "?scope=read++write", "?audience=a%20b", "?audience=%07",
                ] {
                    let response = try await client.authz("/authz" + query, gateway: gw, authorization: bearer(token))
                    response.expectOAuthError(.badRequest, "invalid_request")
                    #expect(!response.text.contains(token), "\(query)")
                }
            }
        }
    }

    // MARK: Refused: the gateway

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func missingOrWrongGatewayCredentialsAre401WithTheGatewayChallenge(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "app", subject: "u")).accessToken
            let credentials: [(String, String?)] = [
                ("none", nil),
                ("wrong secret", basicAuthorization(id: gw.id, secret: gw.secret + "x")),
                ("unknown client", basicAuthorization(id: "nobody", secret: gw.secret)),
                ("empty", ""),
                ("scheme only", "Basic"),
                ("bearer scheme", "Bearer \(gw.secret)"),
                ("bad base64", "Basic %%%"),
                ("10 KB", "Basic " + String(repeating: "QUFB", count: 2560)),
            ]
            try await withPublicRouter(h.services, over: transport) { client in
                for (label, value) in credentials {
                    var headers: HTTPFields = [.authorization: bearer(token)]
                    if let value { headers[gatewayHeader] = value }
                    let response = try await client.authz(headers: headers)
                    response.expectOAuthError(.unauthorized, "invalid_client")
                    #expect(response.headers[.wwwAuthenticate] == gatewayChallenge, "\(label)")
                }
                // The gateway's credentials belong in X-Tokend-Authorization, not in Authorization.
                let misplaced = try await client.authz(gateway: nil, authorization: gw.basic)
                misplaced.expectOAuthError(.unauthorized, "invalid_client")
                #expect(misplaced.headers[.wwwAuthenticate] == gatewayChallenge)
                // Gateway authentication comes first: an unauthenticated gateway learns nothing about the token.
                let noToken = try await client.authz(gateway: nil, authorization: nil)
                #expect(noToken.headers[.wwwAuthenticate] == gatewayChallenge)
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func gatewayWithoutIntrospectRoleIs403(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let issuer = try await h.caller("app", [.issue, .revoke])
            let token = try await h.issue(IssueRequest(clientID: "app", subject: "u")).accessToken
            try await withPublicRouter(h.services, over: transport) { client in
                for authorization: String? in [bearer(token), nil] {
                    let response = try await client.authz(gateway: issuer, authorization: authorization)
                    response.expectOAuthError(.forbidden, "unauthorized_client")
                    #expect(response.headers[.wwwAuthenticate] == nil)
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func storeOutageIs503SoGatewaysFailClosed(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "app", subject: "u")).accessToken
            let services = h.storeOnlyServices()
            try await withPublicRouter(services, over: transport) { client in
                #expect(try await client.authz(gateway: gw, authorization: bearer(token)).status == .ok)
                // The store goes away; the gateway still authenticates from the authenticator's cache.
                try await h.takeDown()
                let lookup = try await client.authz(gateway: gw, authorization: bearer(token))
                lookup.expectOAuthError(.serviceUnavailable, "temporarily_unavailable")
                #expect(lookup.headers[.retryAfter] == "1")
                // Past the cache, the gateway's own record cannot be read either.
                h.clock.advance(by: 10)
                let auth = try await client.authz(gateway: gw, authorization: bearer(token))
                auth.expectOAuthError(.serviceUnavailable, "temporarily_unavailable")
                #expect(auth.headers[.retryAfter] == "1")
            }
        }
    }

    // MARK: Metrics

    @Test(arguments: Transport.allCases)
    func requestsAndDecisionsAreCountedUnderTheAuthzRoute(over transport: Transport) async throws {
        try await withHarness(.sqlite) { h in
            let gw = try await h.caller("gateway", [.introspect])
            _ = try await h.caller("app", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "app", subject: "u")).accessToken
            try await withPublicRouter(h.services, over: transport) { client, fastPath in
                _ = try await client.authz(gateway: gw, authorization: bearer(token))
                _ = try await client.authz("/authz/some/path?x=1", method: .post, gateway: gw, authorization: bearer(token))
                _ = try await client.authz(gateway: gw, authorization: bearer("tkd_at_" + String(repeating: "B", count: 43)))
                _ = try await client.authz(gateway: nil, authorization: bearer(token))
                _ = try await client.authz(gateway: gw, authorization: nil)
                // Over a socket the last one (a cached gateway, no bearer) is the fast path's.
                if let fastPath { #expect(fastPath.answered == 1) }
            }
            try await withAdminRouter(h.services) { client in
                let text = try await client.send("/metrics", method: .get).text
                #expect(text.contains(#"tokend_http_requests_total{listener="public",route="/authz",status="200"} 2"#), "\(text)")
                #expect(text.contains(#"tokend_http_requests_total{listener="public",route="/authz",status="401"} 3"#))
                #expect(text.contains(#"tokend_introspections_total{result="active""#))
                #expect(text.contains(#"tokend_introspections_total{result="inactive""#))
                #expect(!text.contains("unmatched"), "every /authz request is named by its route")
                #expect(!text.contains(token))
            }
        }
    }
}
