import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import TokendAPI
import TokendCore
import TokendTestSupport

/// `POST /oauth2/introspect` (RFC 7662) as SPEC.md "Public listener" describes it.
@Suite struct IntrospectEndpointTests {
    // MARK: Active answers

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func activeAnswerCarriesEveryClaimThatIsSet(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("resource-server", [.introspect])
            _ = try await h.caller("auth-server", [.issue])
            let now = Int64(h.clock.now().timeIntervalSince1970)
            let issued = try await h.issue(
                IssueRequest(
                    clientID: "auth-server",
                    subject: "user-42",
                    username: "alice@example.com",
                    scope: "read write",
                    audiences: ["https://api.example", "https://other.example"],
                    ttl: 600,
                    confirmation: TokendCore.Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
                    extra: ["tenant": "acme", "acr": "urn:mace:incommon:iap:silver"],
                    notBefore: Date(timeIntervalSince1970: TimeInterval(now - 30))
                )
            )
            try await withPublicRouter(h.services, over: transport) { client, fastPath in
                // The second answer comes from memory: over a socket, from the fast path.
                for _ in 0..<2 {
                    let response = try await client.introspect(issued.accessToken, as: rs)
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "application/json")
                    #expect(response.headers[.cacheControl] == "no-store")
                let expected: JSON = [
                    "active": true,
                    "scope": "read write",
                    "client_id": "auth-server",
                    "username": "alice@example.com",
                    "token_type": "DPoP",
                    "exp": JSON(now + 600),
                    "iat": JSON(now),
                    "nbf": JSON(now - 30),
                    "sub": "user-42",
                    "aud": ["https://api.example", "https://other.example"],
                    "iss": .string(testIssuerURL),
                    "jti": .string(issued.access.jti),
                    "cnf": ["jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"],
                    "tenant": "acme",
                    "acr": "urn:mace:incommon:iap:silver",
                ]
                    #expect(response.json == expected, "got \(response.text)")
                }
                if let fastPath { #expect(fastPath.answered == 1) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func plainAndCertificateBoundTokensAreBearerWithoutUnsetClaims(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let now = Int64(h.clock.now().timeIntervalSince1970)
            let plain = try await h.issue(IssueRequest(clientID: "as"))
            let mtls = try await h.issue(
                IssueRequest(
                    clientID: "as",
                    subject: "svc",
                    confirmation: TokendCore.Confirmation(x5tS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
                )
            )
            try await withPublicRouter(h.services, over: transport) { client in
                let plainAnswer = try await client.introspect(plain.accessToken, as: rs)
                #expect(
                    plainAnswer.json == [
                        "active": true, "client_id": "as", "token_type": "Bearer", "exp": JSON(now + 3600), "iat": JSON(now),
                        "iss": .string(testIssuerURL), "jti": .string(plain.access.jti),
                    ],
                    "got \(plainAnswer.text)"
                )
                let mtlsAnswer = try await client.introspect(mtls.accessToken, as: rs)
                #expect(mtlsAnswer.json?["token_type"] == "Bearer")
                #expect(mtlsAnswer.json?["cnf"] == ["x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"])
                #expect(mtlsAnswer.json?["sub"] == "svc")
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func clientSecretPostAuthenticates(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "u"))
            try await withPublicRouter(h.services, over: transport) { client in
                let response = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders,
                    body: formBody(["token": issued.accessToken, "client_id": rs.id, "client_secret": rs.secret])
                )
                #expect(response.status == .ok)
                #expect(response.json?["active"] == true)
                #expect(response.json?["sub"] == "u")
                // The same with a wrong secret is refused.
                let wrong = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders,
                    body: formBody(["token": issued.accessToken, "client_id": rs.id, "client_secret": rs.secret + "x"])
                )
                wrong.expectOAuthError(.unauthorized, "invalid_client")
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func basicCredentialsAreFormDecodedPerRFC6749(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("urn:rs:api@example.com", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services, over: transport) { client in
                // id form-encoded: "urn%3Ars%3Aapi%40example.com:<secret>"
                let encoded = try await client.introspect(issued.accessToken, as: rs)
                #expect(encoded.status == .ok)
                #expect(encoded.json?["active"] == true)
                // A colon inside the raw (unencoded) id splits it at the wrong place: not this client.
                let raw = "Basic " + Data("\(rs.id):\(rs.secret)".utf8).base64EncodedString()
                let rawResponse = try await client.send(
                    "/oauth2/introspect",
                    headers: [.contentType: "application/x-www-form-urlencoded", .authorization: raw],
                    body: formBody(["token": issued.accessToken])
                )
                rawResponse.expectOAuthError(.unauthorized, "invalid_client")
            }
        }
    }

    // MARK: Inactive answers

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func inactiveAnswersAreExactlyActiveFalse(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let live = try await h.issue(IssueRequest(clientID: "as"))
            let revoked = try await h.issue(IssueRequest(clientID: "as"))
            _ = try await h.services.revoker.revoke(.token(TokenHash(token: revoked.accessToken)), reason: "test")
            let unknown = "tkd_at_" + String(repeating: "A", count: 43)
            let candidates: [(String, String)] = [
                ("unknown", unknown),
                ("revoked", revoked.accessToken),
                ("malformed", "not-a-token"),
                ("wrong prefix", "tkd_xx_" + live.accessToken.dropFirst(7)),
                ("truncated", String(live.accessToken.dropLast())),
                ("4097 bytes", live.accessToken + String(repeating: "A", count: 4097 - live.accessToken.utf8.count)),
                ("10 KB", String(repeating: "tkd_at_", count: 1500)),
            ]
            try await withPublicRouter(h.services, over: transport) { client, fastPath in
                #expect(try await client.isActive(live.accessToken, as: rs))
                for (label, token) in candidates {
                    let response = try await client.introspect(token, as: rs)
                    #expect(response.status == .ok, "\(label)")
                    #expect(response.json == ["active": false], "\(label): \(response.text)")
                    #expect(response.headers[.cacheControl] == "no-store", "\(label)")
                }
                // Over a socket all but one never leave the fast path: the malformed ones are
                // answered from memory, unknown and revoked ones (not in the cache) after the fast
                // path's own store read; the 10 KB body is past its limit.
                if let fastPath { #expect(fastPath.answered == 6) }
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func expiredTokenIsInactive(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", ttl: 60))
            try await withPublicRouter(h.services, over: transport) { client in
                h.clock.advance(by: 59)
                #expect(try await client.isActive(issued.accessToken, as: rs))
                h.clock.advance(by: 1)
                let response = try await client.introspect(issued.accessToken, as: rs)
                #expect(response.json == ["active": false], "\(response.text)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func notYetValidTokenIsInactiveUntilNbf(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let nbf = h.clock.now().addingTimeInterval(120)
            let issued = try await h.issue(IssueRequest(clientID: "as", notBefore: nbf))
            try await withPublicRouter(h.services, over: transport) { client in
                let early = try await client.introspect(issued.accessToken, as: rs)
                #expect(early.json == ["active": false], "\(early.text)")
                h.clock.advance(by: 119)
                #expect(try await client.isActive(issued.accessToken, as: rs) == false)
                h.clock.advance(by: 1)
                let valid = try await client.introspect(issued.accessToken, as: rs)
                #expect(valid.json?["active"] == true)
                #expect(valid.json?["nbf"] == JSON(Int64(nbf.timeIntervalSince1970)))
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func audienceRestrictedCallerSeesOnlyItsAudiences(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let restricted = try await h.caller("rs-a", [.introspect], audiences: ["https://a.example"])
            let unrestricted = try await h.caller("rs-any", [.introspect])
            _ = try await h.caller("as", [.issue])
            let forA = try await h.issue(IssueRequest(clientID: "as", audiences: ["https://b.example", "https://a.example"]))
            let forB = try await h.issue(IssueRequest(clientID: "as", audiences: ["https://b.example"]))
            let noAud = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services, over: transport) { client in
                #expect(try await client.isActive(forA.accessToken, as: restricted))
                let outside = try await client.introspect(forB.accessToken, as: restricted)
                #expect(outside.json == ["active": false], "\(outside.text)")
                let none = try await client.introspect(noAud.accessToken, as: restricted)
                #expect(none.json == ["active": false], "\(none.text)")
                #expect(try await client.isActive(forB.accessToken, as: unrestricted))
                #expect(try await client.isActive(noAud.accessToken, as: unrestricted))
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func tokenTypeHintIsOnlyAHint(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", refresh: true))
            try await withPublicRouter(h.services, over: transport) { client in
                for hint in ["refresh_token", "access_token", "no_such_hint"] {
                    let response = try await client.send(
                        "/oauth2/introspect",
                        headers: formHeaders(rs),
                        body: formBody(["token": issued.accessToken, "token_type_hint": hint])
                    )
                    #expect(response.json?["active"] == true, "hint \(hint): \(response.text)")
                    #expect(response.json?["token_type"] == "Bearer")
                }
                // A refresh token is active too, and has no RFC 6749 token type.
                let refresh = try await client.introspect(try #require(issued.refreshToken), as: rs)
                #expect(refresh.json?["active"] == true)
                #expect(refresh.json?["token_type"] == nil)
            }
        }
    }

    // MARK: Authentication and authorization

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func missingOrWrongCredentialsAre401InvalidClient(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            let body = formBody(["token": issued.accessToken])
            let authorizations: [(String, String?)] = [
                ("none", nil),
                ("wrong secret", basicAuthorization(id: rs.id, secret: rs.secret + "x")),
                ("unknown client", basicAuthorization(id: "nobody", secret: rs.secret)),
                ("another client's secret", basicAuthorization(id: "as", secret: rs.secret)),
                ("empty secret", basicAuthorization(id: rs.id, secret: "")),
                ("bad base64", "Basic %%%not-base64%%%"),
                ("no colon", "Basic " + Data("rs\(rs.secret)".utf8).base64EncodedString()),
                ("empty id", "Basic " + Data(":\(rs.secret)".utf8).base64EncodedString()),
                ("bad escape in id", "Basic " + Data("rs%zz:\(rs.secret)".utf8).base64EncodedString()),
                ("bearer scheme", "Bearer \(rs.secret)"),
                ("scheme only", "Basic"),
            ]
            try await withPublicRouter(h.services, over: transport) { client in
                for (label, authorization) in authorizations {
                    var headers = formHeaders
                    if let authorization { headers[.authorization] = authorization }
                    let response = try await client.send("/oauth2/introspect", headers: headers, body: body)
                    response.expectOAuthError(.unauthorized, "invalid_client")
                    #expect(response.headers[.wwwAuthenticate] == #"Basic realm="tokend""#, "\(label)")
                    #expect(response.json?["active"] == nil, "\(label)")
                }
                // client_secret_post with a wrong secret or a missing secret.
                for fields: KeyValuePairs<String, String> in [
                    ["token": issued.accessToken, "client_id": rs.id, "client_secret": "wrong"],
                    ["token": issued.accessToken, "client_id": rs.id],
                ] {
                    let response = try await client.send("/oauth2/introspect", headers: formHeaders, body: formBody(fields))
                    response.expectOAuthError(.unauthorized, "invalid_client")
                    #expect(response.headers[.wwwAuthenticate] == #"Basic realm="tokend""#)
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func basicAndClientSecretTogetherAreInvalidRequest(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services, over: transport) { client in
                let response = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders(rs),
                    body: formBody(["token": issued.accessToken, "client_id": rs.id, "client_secret": rs.secret])
                )
                response.expectOAuthError(.badRequest, "invalid_request")
                #expect(response.json?["active"] == nil)
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func callerWithoutIntrospectRoleIs403(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let issuer = try await h.caller("as", [.issue, .revoke])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services, over: transport) { client in
                let response = try await client.introspect(issued.accessToken, as: issuer)
                response.expectOAuthError(.forbidden, "unauthorized_client")
                #expect(response.json?["active"] == nil)
                // Its own token makes no difference.
                let post = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders,
                    body: formBody(["token": issued.accessToken, "client_id": issuer.id, "client_secret": issuer.secret])
                )
                post.expectOAuthError(.forbidden, "unauthorized_client")
            }
        }
    }

    // MARK: Malformed requests

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func malformedRequestsAre400InvalidRequest(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "as")).accessToken
            let cases: [(String, HTTPFields, String)] = [
                ("missing token", formHeaders(rs), "token_type_hint=access_token"),
                ("empty body", formHeaders(rs), ""),
                ("duplicate token", formHeaders(rs), "token=\(token)&token=\(token)"),
                ("duplicate hint", formHeaders(rs), "token=\(token)&token_type_hint=a&token_type_hint=a"),
                ("duplicate client_id", formHeaders, "token=\(token)&client_id=rs&client_id=rs&client_secret=\(rs.secret)"),
                ("invalid UTF-8", formHeaders(rs), "token=%FF%FE"),
                ("bad percent escape", formHeaders(rs), "token=%zz"),
                ("truncated percent escape", formHeaders(rs), "token=abc%4"),
                ("JSON content type", [.contentType: "application/json", .authorization: rs.basic], #"{"token":"\#(token)"}"#),
                ("text content type", [.contentType: "text/plain", .authorization: rs.basic], "token=\(token)"),
                ("no content type", [.authorization: rs.basic], "token=\(token)"),
                ("multipart", [.contentType: "multipart/form-data; boundary=x", .authorization: rs.basic], "token=\(token)"),
            ]
            try await withPublicRouter(h.services, over: transport) { client in
                for (label, headers, body) in cases {
                    let response = try await client.send("/oauth2/introspect", headers: headers, body: ByteBuffer(string: body))
                    #expect(response.status == .badRequest, "\(label): \(response.status.code) \(response.text)")
                    #expect(response.json?["error"] == "invalid_request", "\(label): \(response.text)")
                    #expect((response.json?["error_description"]?.string ?? "").isEmpty == false, "\(label): \(response.text)")
                    #expect(response.headers[.cacheControl] == "no-store", "\(label)")
                    #expect(!response.text.contains(token), "\(label): the token is echoed")
                }
                // A charset parameter on the right media type is fine.
                let withCharset = try await client.send(
                    "/oauth2/introspect",
                    headers: [.contentType: "application/x-www-form-urlencoded; charset=UTF-8", .authorization: rs.basic],
                    body: formBody(["token": token])
                )
                #expect(withCharset.json?["active"] == true)
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func bodiesOver64KiBAre413(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            try await withPublicRouter(h.services, over: transport) { client in
                let prefix = "token="
                let atLimit = prefix + String(repeating: "A", count: 64 * 1024 - prefix.utf8.count)
                let fits = try await client.send("/oauth2/introspect", headers: formHeaders(rs), body: ByteBuffer(string: atLimit))
                #expect(fits.status == .ok)
                #expect(fits.json == ["active": false])

                let response = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders(rs),
                    body: ByteBuffer(string: atLimit + "A")
                )
                #expect(response.status == .contentTooLarge, "\(response.status.code) \(response.text)")
                #expect(response.headers[.cacheControl] == "no-store")
                let huge = try await client.send(
                    "/oauth2/introspect",
                    headers: formHeaders(rs),
                    body: ByteBuffer(repeating: UInt8(ascii: "A"), count: 1 << 20)
                )
                #expect(huge.status == .contentTooLarge)
            }
        }
    }

    // MARK: Store outage, methods

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func storeOutageIs503TemporarilyUnavailable(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            let services = h.storeOnlyServices()
            try await withPublicRouter(services, over: transport) { client in
                #expect(try await client.isActive(issued.accessToken, as: rs))
                // The store goes away: the token lookup fails (the client still authenticates from
                // the authenticator's cache).
                try await h.takeDown()
                let lookup = try await client.introspect(issued.accessToken, as: rs)
                lookup.expectOAuthError(.serviceUnavailable, "temporarily_unavailable")
                #expect(lookup.headers[.retryAfter] != nil)
                #expect(lookup.json?["active"] == nil, "never a guess: \(lookup.text)")
                // The client record has left the authenticator's cache: authentication fails too.
                h.clock.advance(by: 10)
                let auth = try await client.introspect(issued.accessToken, as: rs)
                auth.expectOAuthError(.serviceUnavailable, "temporarily_unavailable")
                #expect(auth.headers[.retryAfter] != nil)
                #expect(auth.json?["active"] == nil)
            }
        }
    }

    @Test(arguments: StoreKind.allCases, Transport.allCases)
    func otherMethodsAre405(kind: StoreKind, over transport: Transport) async throws {
        try await withHarness(kind) { h in
            try await withPublicRouter(h.services, over: transport) { client in
                for method: HTTPRequest.Method in [.get, .put, .delete] {
                    let response = try await client.send("/oauth2/introspect", method: method)
                    #expect(response.status == .methodNotAllowed, "\(method)")
                    #expect(response.headers[.allow] == "POST", "\(method)")
                    #expect(response.headers[.cacheControl] == "no-store", "\(method)")
                }
            }
        }
    }
}
