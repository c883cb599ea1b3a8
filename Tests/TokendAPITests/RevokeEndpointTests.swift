import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import TokendAPI
import TokendCore
import TokendTestSupport

/// `POST /oauth2/revoke` (RFC 7009) as SPEC.md "Public listener" describes it.
@Suite struct RevokeEndpointTests {
    private func expectEmptyOK(_ response: TestResponse, _ label: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == .ok, "\(label): \(response.status.code) \(response.text)", sourceLocation: sourceLocation)
        #expect(response.body.readableBytes == 0, "\(label): body \(response.text)", sourceLocation: sourceLocation)
        #expect(response.headers[.cacheControl] == "no-store", "\(label)", sourceLocation: sourceLocation)
    }

    @Test(arguments: StoreKind.allCases)
    func revokingOwnTokenIsDurableAndMakesItInactive(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            let other = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services) { client in
                #expect(try await client.isActive(issued.accessToken, as: rs))
                expectEmptyOK(try await client.revoke(issued.accessToken, as: owner), "revoke")
                // Committed in the store before the 200.
                let record = try await h.store.token(hash: TokenHash(token: issued.accessToken))
                #expect(record?.revokedAt != nil)
                #expect(try await client.isActive(issued.accessToken, as: rs) == false)
                #expect(try await client.isActive(other.accessToken, as: rs), "another token of the client stays active")
                // Already revoked: 200 again, and no second log entry.
                let head = try await h.store.revocationHead()
                expectEmptyOK(try await client.revoke(issued.accessToken, as: owner), "again")
                #expect(try await h.store.revocationHead() == head)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func unknownAndMalformedTokensAnd200(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let owner = try await h.caller("as", [.issue])
            try await withPublicRouter(h.services) { client in
                for token in [
                    "tkd_at_" + String(repeating: "B", count: 43), "tkd_rt_" + String(repeating: "C", count: 43), "garbage",
                    String(repeating: "x", count: 5000),
                ] {
                    expectEmptyOK(try await client.revoke(token, as: owner), String(token.prefix(10)))
                }
                #expect(try await h.store.revocationHead() == 0, "nothing was logged")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func unknownHintIsIgnored(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let a = try await h.issue(IssueRequest(clientID: "as"))
            let b = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services) { client in
                expectEmptyOK(try await client.revoke(a.accessToken, hint: "id_token", as: owner), "unknown hint")
                #expect(try await client.isActive(a.accessToken, as: rs) == false)
                // A wrong (known) hint is only a hint too.
                expectEmptyOK(try await client.revoke(b.accessToken, hint: "refresh_token", as: owner), "wrong hint")
                #expect(try await client.isActive(b.accessToken, as: rs) == false)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anotherClientsTokenNeedsRoleRevoke(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let stranger = try await h.caller("stranger", [.introspect, .issue])
            let admin = try await h.caller("revoker", [.revoke])
            let issued = try await h.issue(IssueRequest(clientID: "as", refresh: true))
            try await withPublicRouter(h.services) { client in
                let refused = try await client.revoke(issued.accessToken, as: stranger)
                refused.expectOAuthError(.badRequest, "unauthorized_client")
                let refusedRefresh = try await client.revoke(try #require(issued.refreshToken), as: stranger)
                refusedRefresh.expectOAuthError(.badRequest, "unauthorized_client")
                #expect(try await client.isActive(issued.accessToken, as: rs), "the token stays active")
                #expect(try await client.isActive(try #require(issued.refreshToken), as: rs))
                #expect(try await h.store.revocationHead() == 0)

                expectEmptyOK(try await client.revoke(issued.accessToken, as: admin), "role revoke")
                #expect(try await client.isActive(issued.accessToken, as: rs) == false)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokingRefreshTokenRevokesItsGrant(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let grant = try await h.issue(IssueRequest(clientID: "as", subject: "u", refresh: true))
            let otherGrant = try await h.issue(IssueRequest(clientID: "as", subject: "u", refresh: true))
            try await withPublicRouter(h.services) { client in
                expectEmptyOK(try await client.revoke(try #require(grant.refreshToken), hint: "refresh_token", as: owner))
                #expect(try await client.isActive(try #require(grant.refreshToken), as: rs) == false)
                #expect(try await client.isActive(grant.accessToken, as: rs) == false, "the grant's access token is revoked too")
                #expect(try await client.isActive(otherGrant.accessToken, as: rs), "another grant is untouched")
                #expect(try await client.isActive(try #require(otherGrant.refreshToken), as: rs))
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokingAccessTokenLeavesRefreshTokenActive(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let grant = try await h.issue(IssueRequest(clientID: "as", refresh: true))
            try await withPublicRouter(h.services) { client in
                expectEmptyOK(try await client.revoke(grant.accessToken, hint: "access_token", as: owner))
                #expect(try await client.isActive(grant.accessToken, as: rs) == false)
                #expect(try await client.isActive(try #require(grant.refreshToken), as: rs))
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func authenticationAndRequestErrors(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services) { client in
                let anonymous = try await client.send("/oauth2/revoke", headers: formHeaders, body: formBody(["token": issued.accessToken]))
                anonymous.expectOAuthError(.unauthorized, "invalid_client")
                #expect(anonymous.headers[.wwwAuthenticate] == #"Basic realm="tokend""#)

                let wrong = try await client.revoke(issued.accessToken, as: Caller(id: "as", secret: "not-the-secret"))
                wrong.expectOAuthError(.unauthorized, "invalid_client")
                #expect(wrong.headers[.wwwAuthenticate] == #"Basic realm="tokend""#)

                let missing = try await client.send(
                    "/oauth2/revoke",
                    headers: formHeaders(owner),
                    body: formBody(["token_type_hint": "access_token"])
                )
                missing.expectOAuthError(.badRequest, "invalid_request")
                #expect(missing.json?["error_description"] != nil)

                let duplicate = try await client.send(
                    "/oauth2/revoke",
                    headers: formHeaders(owner),
                    body: ByteBuffer(string: "token=a&token=b")
                )
                duplicate.expectOAuthError(.badRequest, "invalid_request")

                let json = try await client.send(
                    "/oauth2/revoke",
                    headers: [.contentType: "application/json", .authorization: owner.basic],
                    body: ByteBuffer(string: #"{"token":"\#(issued.accessToken)"}"#)
                )
                json.expectOAuthError(.badRequest, "invalid_request")

                let both = try await client.send(
                    "/oauth2/revoke",
                    headers: formHeaders(owner),
                    body: formBody(["token": issued.accessToken, "client_secret": owner.secret])
                )
                both.expectOAuthError(.badRequest, "invalid_request")

                // client_secret_post works here too.
                let post = try await client.send(
                    "/oauth2/revoke",
                    headers: formHeaders,
                    body: formBody(["token": issued.accessToken, "client_id": owner.id, "client_secret": owner.secret])
                )
                expectEmptyOK(post, "client_secret_post")
                #expect(try await client.isActive(issued.accessToken, as: rs) == false)

                let get = try await client.send("/oauth2/revoke", method: .get)
                #expect(get.status == .methodNotAllowed)
            }
        }
    }

    /// The store goes away: the revocation is answered 503 with Retry-After, never 200 (the caller
    /// still authenticates from the authenticator's cache, so the revocation itself is what fails).
    @Test(arguments: StoreKind.allCases)
    func storeOutageIs503AndNothingIsAcknowledged(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let owner = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            let services = h.storeOnlyServices()
            try await withPublicRouter(services) { client in
                #expect(try await client.revoke("garbage", as: owner).status == .ok)
                try await h.takeDown()
                let response = try await client.revoke(issued.accessToken, as: owner)
                response.expectOAuthError(.serviceUnavailable, "temporarily_unavailable")
                #expect(response.headers[.retryAfter] != nil)
            }
        }
    }
}
