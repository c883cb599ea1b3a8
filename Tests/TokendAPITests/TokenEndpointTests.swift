import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
import TokendAPI
import TokendCore
import TokendProto
import TokendTestSupport

/// `POST /oauth2/token` (RFC 6749 §4.4 and §6 with rotation), its Connect twin, and RFC 9701
/// signed introspection with `/.well-known/jwks.json`, as SPEC.md describes them.
@Suite struct TokenEndpointTests {
    /// A client with role `client_credentials` and allowed scopes and audiences.
    private func makeJob(_ h: Harness, _ id: String = "job", roles: [Role] = [.clientCredentials]) async throws -> Caller {
        let (_, secret) = try await h.services.registry.create(
            id: id,
            roles: roles.map(\.rawValue),
            audiences: ["api://orders", "api://billing"],
            scopes: ["orders:read orders:write", "billing:read"]
        )
        return Caller(id: id, secret: secret)
    }

    private func token(
        _ client: any TestClientProtocol,
        _ pairs: KeyValuePairs<String, String>,
        as caller: Caller,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        try await client.send("/oauth2/token", headers: formHeaders(caller), body: formBody(pairs), sourceLocation: sourceLocation)
    }

    @Test(arguments: StoreKind.allCases)
    func clientCredentialsIssuesATokenForTheClientItself(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let job = try await makeJob(h)
            let rs = try await h.caller("rs", [.introspect])
            try await withPublicRouter(h.services) { client in
                let response = try await token(client, ["grant_type": "client_credentials"], as: job)
                #expect(response.status == .ok, "\(response.text)")
                #expect(response.headers[.cacheControl] == "no-store" && response.headers[HTTPField.Name("Pragma")!] == "no-cache")
                let body = try #require(response.json?.object)
                #expect(Set(body.keys) == ["access_token", "token_type", "expires_in", "scope"], "no refresh token (§4.4.3)")
                #expect(body["token_type"] == "Bearer" && body["expires_in"] == 3600)
                #expect(body["scope"] == "orders:read orders:write billing:read", "all allowed scopes when none is asked for")
                let access = try #require(body["access_token"]?.string)
                let answer = try await client.introspect(access, as: rs)
                #expect(answer.json?["sub"] == "job" && answer.json?["client_id"] == "job")
                #expect(answer.json?["aud"] == ["api://orders", "api://billing"])

                // client_secret_post, a narrower scope and one RFC 8707 resource.
                let post = try await client.send(
                    "/oauth2/token",
                    headers: formHeaders,
                    body: formBody([
                        "grant_type": "client_credentials", "client_id": job.id, "client_secret": job.secret, "scope": "orders:read",
                        "resource": "api://billing",
                    ])
                )
                #expect(post.status == .ok, "\(post.text)")
                #expect(post.json?["scope"] == "orders:read")
                let narrow = try await client.introspect(try #require(post.json?["access_token"]?.string), as: rs)
                #expect(narrow.json?["scope"] == "orders:read" && narrow.json?["aud"] == ["api://billing"])
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func refusalsAreTheDocumentedErrors(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let job = try await makeJob(h)
            let plain = try await makeJob(h, "plain", roles: [.introspect])
            let issued = try await h.issue(IssueRequest(clientID: "job", subject: "alice", scope: "orders:read", refresh: true))
            try await withPublicRouter(h.services) { client in
                let cases: [(KeyValuePairs<String, String>, Caller, HTTPResponse.Status, String)] = [
                    (["grant_type": "password"], job, .badRequest, "unsupported_grant_type"),
                    (["scope": "orders:read"], job, .badRequest, "invalid_request"),
                    (["grant_type": "client_credentials"], plain, .badRequest, "unauthorized_client"),
                    (["grant_type": "client_credentials", "scope": "orders:read admin"], job, .badRequest, "invalid_scope"),
                    (["grant_type": "client_credentials", "scope": "bad\"scope"], job, .badRequest, "invalid_scope"),
                    (["grant_type": "client_credentials", "audience": "api://elsewhere"], job, .badRequest, "invalid_target"),
                    (["grant_type": "refresh_token"], job, .badRequest, "invalid_request"),
                    (["grant_type": "refresh_token", "refresh_token": issued.accessToken], job, .badRequest, "invalid_grant"),
                    (["grant_type": "refresh_token", "refresh_token": try #require(issued.refreshToken)], plain, .badRequest, "invalid_grant"),
                    (["grant_type": "refresh_token", "refresh_token": "tkd_rt_" + String(repeating: "A", count: 43)], job, .badRequest, "invalid_grant"),
                    (
                        ["grant_type": "refresh_token", "refresh_token": try #require(issued.refreshToken), "scope": "orders:write"], job,
                        .badRequest, "invalid_scope"
                    ),
                    (["grant_type": "client_credentials"], Caller(id: "job", secret: "wrong"), .unauthorized, "invalid_client"),
                ]
                for (pairs, caller, status, error) in cases {
                    let response = try await token(client, pairs, as: caller)
                    response.expectOAuthError(status, error)
                    #expect(response.headers[HTTPField.Name("Pragma")!] == "no-cache")
                    if status == .unauthorized { #expect(response.headers[.wwwAuthenticate] == #"Basic realm="tokend""#) }
                }
                let duplicate = try await client.send(
                    "/oauth2/token",
                    headers: formHeaders(job),
                    body: ByteBuffer(string: "grant_type=client_credentials&grant_type=client_credentials")
                )
                duplicate.expectOAuthError(.badRequest, "invalid_request")
                // None of those spent the refresh token.
                #expect(try await h.store.token(hash: TokenHash(token: try #require(issued.refreshToken)))?.spentAt == nil)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func refreshRotatesAndAReplayRevokesTheGrant(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let app = try await makeJob(h, "app", roles: [.issue])
            let rs = try await h.caller("rs", [.introspect])
            let issued = try await h.issue(IssueRequest(clientID: "app", subject: "alice", scope: "read write", refresh: true))
            try await withPublicRouter(h.services) { client in
                let first = try #require(issued.refreshToken)
                let r1 = try await token(client, ["grant_type": "refresh_token", "refresh_token": first], as: app)
                #expect(r1.status == .ok, "\(r1.text)")
                #expect(r1.headers[.cacheControl] == "no-store" && r1.headers[HTTPField.Name("Pragma")!] == "no-cache")
                let second = try #require(r1.json?["refresh_token"]?.string)
                let r2 = try await token(client, ["grant_type": "refresh_token", "refresh_token": second, "scope": "read"], as: app)
                #expect(r2.status == .ok && r2.json?["scope"] == "read", "\(r2.text)")
                let latest = try #require(r2.json?["access_token"]?.string)
                let third = try #require(r2.json?["refresh_token"]?.string)
                #expect(Set([first, second, third]).count == 3)
                #expect(try await client.isActive(latest, as: rs))
                #expect(try await client.isActive(second, as: rs) == false, "a spent refresh token is inactive")

                // The replay: invalid_grant, and the grant is over on this replica at once.
                let replay = try await token(client, ["grant_type": "refresh_token", "refresh_token": first], as: app)
                replay.expectOAuthError(.badRequest, "invalid_grant")
                #expect(try await client.isActive(latest, as: rs) == false)
                #expect(try await client.isActive(third, as: rs) == false)
                let reuse = try await token(client, ["grant_type": "refresh_token", "refresh_token": third], as: app)
                reuse.expectOAuthError(.badRequest, "invalid_grant")
            }
            // Operators see reuse apart from ordinary refusals (the second presentation found the
            // grant revoked already: refused, not reuse again).
            let metrics = h.services.metrics.exposition()
            for line in [
                #"tokend_token_requests_total{grant_type="refresh_token",outcome="granted"} 2"#,
                #"tokend_token_requests_total{grant_type="refresh_token",outcome="reuse"} 1"#,
                #"tokend_token_requests_total{grant_type="refresh_token",outcome="refused"} 1"#,
            ] {
                #expect(metrics.contains(line), "\(line) in\n\(metrics)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func connectTokenMapsErrorsAsEverywhere(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let job = try await makeJob(h)
            let plain = try await makeJob(h, "plain", roles: [.introspect])
            try await withPublicRouter(h.services) { client in
                var request = Tokend_V1_TokenRequest()
                request.grantType = "client_credentials"
                request.scope = "billing:read"
                let ok = try await client.connect("/tokend.v1.TokenService/Token", request, authorization: job.basic)
                let answer = try ok.message(Tokend_V1_TokenResponse.self)
                #expect(answer.scope == "billing:read" && answer.tokenType == "Bearer" && answer.refreshToken.isEmpty)
                #expect(OpaqueToken.isWellFormed(answer.accessToken))

                try await client.connect("/tokend.v1.TokenService/Token", request, authorization: plain.basic)
                    .expectConnectError(.forbidden, "permission_denied")
                request.scope = "nope"
                try await client.connect("/tokend.v1.TokenService/Token", request, authorization: job.basic)
                    .expectConnectError(.badRequest, "invalid_argument")
                request.grantType = "refresh_token"
                request.refreshToken = "tkd_rt_" + String(repeating: "Q", count: 43)
                request.scope = ""
                try await client.connect("/tokend.v1.TokenService/Token", request, authorization: job.basic)
                    .expectConnectError(.badRequest, "invalid_argument")
                try await client.connect("/tokend.v1.TokenService/Token", request, authorization: Caller(id: "job", secret: "x").basic)
                    .expectConnectError(.unauthorized, "unauthenticated")
            }
        }
    }

    // MARK: RFC 9701

    /// Verifies a compact JWS against a JWK Set and returns its header and payload.
    private func verify(_ jws: String, with jwks: JSON, sourceLocation: SourceLocation = #_sourceLocation) throws -> (header: JSON, payload: JSON) {
        let parts = jws.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        try #require(parts.count == 3, sourceLocation: sourceLocation)
        func decode(_ part: String) throws -> Data {
            var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while base64.count % 4 != 0 { base64 += "=" }
            return try #require(Data(base64Encoded: base64), sourceLocation: sourceLocation)
        }
        let header = try JSONDecoder().decode(JSON.self, from: try decode(parts[0]))
        let payload = try JSONDecoder().decode(JSON.self, from: try decode(parts[1]))
        guard case .array(let keys)? = jwks["keys"], let jwk = keys.first(where: { $0["kid"] == header["kid"] }) else {
            Issue.record("no key \(String(describing: header["kid"])) in \(jwks)", sourceLocation: sourceLocation)
            return (header, payload)
        }
        #expect(jwk["kty"] == "EC" && jwk["crv"] == "P-256" && jwk["alg"] == "ES256" && jwk["d"] == nil, sourceLocation: sourceLocation)
        let x = try decode(try #require(jwk["x"]?.string)), y = try decode(try #require(jwk["y"]?.string))
        let key = try P256.Signing.PublicKey(x963Representation: [0x04] + x + y)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: try decode(parts[2]))
        #expect(key.isValidSignature(signature, for: Data((parts[0] + "." + parts[1]).utf8)), "signature", sourceLocation: sourceLocation)
        return (header, payload)
    }

    @Test(arguments: StoreKind.allCases)
    func signedIntrospectionVerifiesAgainstTheJWKSAndFollowsARotation(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let issued = try await h.issue(IssueRequest(clientID: "rs", subject: "alice", scope: "read"))
            try await withPublicRouter(h.services) { client in
                func signed(_ token: String, accept: String = "application/token-introspection+jwt") async throws -> TestResponse {
                    var headers = formHeaders(rs)
                    headers[.accept] = accept
                    return try await client.send("/oauth2/introspect", headers: headers, body: formBody(["token": token]))
                }
                let jwks = try #require(try await client.send("/.well-known/jwks.json", method: .get).json)
                for token in [issued.accessToken, "tkd_at_" + String(repeating: "Z", count: 43)] {
                    let response = try await signed(token)
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "application/token-introspection+jwt")
                    #expect(response.headers[.cacheControl] == "no-store")
                    let (header, payload) = try verify(response.text, with: jwks)
                    #expect(header["typ"] == "token-introspection+jwt" && header["alg"] == "ES256")
                    #expect(payload["iss"] == .string(testIssuerURL) && payload["aud"] == "rs" && payload["iat"]?.number != nil)
                    let plain = try await client.introspect(token, as: rs)
                    #expect(payload["token_introspection"] == plain.json, "the same claims as the JSON answer")
                }
                let before = try await signed(issued.accessToken)

                // q-values: JWT only when weighed above JSON; at equal weight, JSON.
                for (accept, jwt) in [
                    ("application/json;q=0.5, application/token-introspection+jwt", true),
                    ("application/token-introspection+jwt;q=0.5, application/json", false),
                    ("application/json, application/token-introspection+jwt", false),
                    ("*/*", false), ("application/*;q=0.1, application/token-introspection+jwt;q=0.2", true),
                ] {
                    let response = try await signed(issued.accessToken, accept: accept)
                    #expect(
                        (response.headers[.contentType] == "application/token-introspection+jwt") == jwt,
                        "\(accept): \(response.headers[.contentType] ?? "-")"
                    )
                }

                // A signed answer is reused for the same caller and record (one signature per 30 s),
                // never once the token is revoked.
                let again = try await signed(issued.accessToken)
                #expect(again.text == before.text)
                let other = try await h.issue(IssueRequest(clientID: "rs", subject: "bob"))
                let beforeRevocation = try await signed(other.accessToken)
                #expect(try verify(beforeRevocation.text, with: jwks).payload["token_introspection"]?["active"] == true)
                _ = try await h.services.revoker.revoke(.token(TokenHash(token: other.accessToken)), reason: "test")
                let afterRevocation = try await signed(other.accessToken)
                #expect(try verify(afterRevocation.text, with: jwks).payload["token_introspection"] == ["active": false])

                let (kid, previous) = try await h.services.tokend.signingKeys.rotate()
                let after = try await signed(issued.accessToken)
                let rotatedJWKS = try #require(try await client.send("/.well-known/jwks.json", method: .get).json)
                #expect(try verify(after.text, with: rotatedJWKS).header["kid"] == .string(kid))
                #expect(try verify(before.text, with: rotatedJWKS).header["kid"] == .string(try #require(previous)), "overlap")
            }
        }
    }
}
