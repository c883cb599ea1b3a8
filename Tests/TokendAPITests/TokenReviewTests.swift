import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import TokendAPI
import TokendCore
import TokendTestSupport

// `POST /apis/authentication.k8s.io/v1/tokenreviews` (Kubernetes webhook token authentication) as
// SPEC.md "Public listener" describes it, on both stores.

private let reviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"
private let kubeAudience = "https://kubernetes.default.svc"

/// A `TokenReview` as kube-apiserver's webhook sends it (v1, with its empty metadata and status).
private func reviewBody(_ token: String, audiences: [String]? = nil) -> ByteBuffer {
    var spec: [String: Any] = ["token": token]
    if let audiences { spec["audiences"] = audiences }
    let object: [String: Any] = [
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": ["creationTimestamp": NSNull()],
        "spec": spec, "status": ["user": [String: Any]()],
    ]
    return ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
}

private let jsonHeaders: HTTPFields = [.contentType: "application/json"]

private func jsonHeaders(_ caller: Caller) -> HTTPFields {
    [.contentType: "application/json", .authorization: caller.basic]
}

/// An answer that authenticates no one, with the request's audiences echoed in `spec` (if any).
private func unauthenticated(audiences: [String]? = nil) -> JSON {
    [
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": audiences.map { ["token": "", "audiences": .array($0.map(JSON.string))] } ?? ["token": ""],
        "status": ["authenticated": false],
    ]
}

extension TestClientProtocol {
    func review(_ body: ByteBuffer, as caller: Caller?, sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestResponse {
        let response = try await send(reviewPath, headers: caller.map(jsonHeaders) ?? jsonHeaders, body: body, sourceLocation: sourceLocation)
        #expect(response.headers[.cacheControl] == "no-store", sourceLocation: sourceLocation)
        return response
    }
}

extension TestResponse {
    /// Checks a `meta/v1` `Status` refusal: status code, reason, a message.
    func expectKubernetesStatus(_ status: HTTPResponse.Status, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == status, "\(self.status.code): \(text)", sourceLocation: sourceLocation)
        #expect(json?["apiVersion"] == "v1" && json?["kind"] == "Status", "\(text)", sourceLocation: sourceLocation)
        #expect(json?["status"] == "Failure" && json?["reason"] == .string(reason), "\(text)", sourceLocation: sourceLocation)
        #expect(json?["code"] == JSON(Int64(status.code)), "\(text)", sourceLocation: sourceLocation)
        #expect((json?["message"]?.string ?? "").isEmpty == false, "\(text)", sourceLocation: sourceLocation)
        #expect(headers[.cacheControl] == "no-store", sourceLocation: sourceLocation)
    }
}

@Suite struct TokenReviewTests {
    // MARK: Authenticated

    @Test(arguments: StoreKind.allCases)
    func activeTokenAuthenticatesWithPrefixedUserGroupsAndExtra(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(
                IssueRequest(
                    clientID: "as",
                    subject: "alice",
                    username: "alice@example.com",
                    scope: "read write",
                    audiences: ["other", kubeAudience],
                    extra: ["groups": " dev, ops ,,admins,", "tenant": "acme"]
                )
            )
            try await withPublicRouter(h.services) { client in
                let response = try await client.review(reviewBody(issued.accessToken, audiences: [kubeAudience, "https://unused"]), as: apiserver)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let expected: JSON = [
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": ["token": "", "audiences": [.string(kubeAudience), "https://unused"]],
                    "status": [
                        "authenticated": true,
                        "user": [
                            "username": "tokend:alice",
                            "uid": "alice",
                            "groups": ["tokend:dev", "tokend:ops", "tokend:admins"],
                            "extra": [
                                "tokend.io/client-id": ["as"],
                                "tokend.io/scope": ["read", "write"],
                                "tokend.io/jti": [.string(issued.access.jti)],
                            ],
                        ],
                        "audiences": [.string(kubeAudience)],
                    ],
                ]
                #expect(response.json == expected, "got \(response.text)")
                #expect(!response.text.contains(issued.accessToken), "the token is never echoed")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func withoutSpecAudiencesTheAnswerHasNoneAndUnsetClaimsAreLeftOut(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "bob", audiences: [kubeAudience]))
            let blankGroups = try await h.issue(IssueRequest(clientID: "as", subject: "carol", extra: ["groups": " , ,"]))
            try await withPublicRouter(h.services) { client in
                for audiences: [String]? in [nil, []] {
                    let response = try await client.review(reviewBody(issued.accessToken, audiences: audiences), as: apiserver)
                    let expected: JSON = [
                        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": ["token": ""],
                        "status": [
                            "authenticated": true,
                            "user": [
                                "username": "tokend:bob", "uid": "bob",
                                "extra": ["tokend.io/client-id": ["as"], "tokend.io/jti": [.string(issued.access.jti)]],
                            ],
                        ],
                    ]
                    #expect(response.json == expected, "\(String(describing: audiences)): \(response.text)")
                }
                let blank = try await client.review(reviewBody(blankGroups.accessToken), as: apiserver)
                #expect(blank.json?["status"]?["user"]?["groups"] == nil, "\(blank.text)")
                #expect(blank.json?["status"]?["user"]?["username"] == "tokend:carol")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func configuredPrefixesNameUsersAndGroups(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "alice", extra: ["groups": "dev,ops"]))
            try await withPublicRouter(h.services, kubernetes: KubernetesNaming(usernamePrefix: "corp-sso#", groupsPrefix: "")) { client in
                let user = try await client.review(reviewBody(issued.accessToken), as: apiserver).json?["status"]?["user"]
                #expect(user?["username"] == "corp-sso#alice")
                #expect(user?["uid"] == "alice")
                #expect(user?["groups"] == ["dev", "ops"])
            }
        }
    }

    // MARK: Not authenticated

    @Test(arguments: StoreKind.allCases)
    func inactiveTokensAre200NotAuthenticatedWithoutAUser(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            let restricted = try await h.caller("kube-restricted", [.introspect], audiences: ["cluster-a"])
            _ = try await h.caller("as", [.issue])
            let live = try await h.issue(IssueRequest(clientID: "as", subject: "u"))
            let revoked = try await h.issue(IssueRequest(clientID: "as", subject: "u"))
            _ = try await h.services.revoker.revoke(.token(TokenHash(token: revoked.accessToken)), reason: "test")
            let expiring = try await h.issue(IssueRequest(clientID: "as", subject: "u", ttl: 30))
            let withRefresh = try await h.issue(IssueRequest(clientID: "as", subject: "u", refresh: true))
            let dpop = try await h.issue(
                IssueRequest(clientID: "as", subject: "u", confirmation: TokendCore.Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"))
            )
            let noSubject = try await h.issue(IssueRequest(clientID: "as"))
            h.clock.advance(by: 30)
            let cases: [(String, String)] = [
                ("unknown", "tkd_at_" + String(repeating: "A", count: 43)),
                ("malformed", "not-a-token"),
                ("10 KB", String(repeating: "tkd_at_", count: 1500)),
                ("revoked", revoked.accessToken),
                ("expired", expiring.accessToken),
                ("refresh token", try #require(withRefresh.refreshToken)),
                ("DPoP-bound", dpop.accessToken),
                // Kubernetes names the user by sub: without one there is no one to authenticate.
                ("no sub", noSubject.accessToken),
            ]
            try await withPublicRouter(h.services) { client in
                #expect(try await client.review(reviewBody(live.accessToken), as: apiserver).json?["status"]?["authenticated"] == true)
                for (label, token) in cases {
                    let response = try await client.review(reviewBody(token), as: apiserver)
                    #expect(response.status == .ok, "\(label)")
                    #expect(response.json == unauthenticated(), "\(label): \(response.text)")
                }
                // Outside the caller's own audiences.
                let outside = try await client.review(reviewBody(live.accessToken), as: restricted)
                #expect(outside.json == unauthenticated(), "\(outside.text)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func specAudiencesMustIntersectTheTokensAudiences(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            _ = try await h.caller("as", [.issue])
            let forAPI = try await h.issue(IssueRequest(clientID: "as", subject: "u", audiences: ["https://api.example"]))
            let noAud = try await h.issue(IssueRequest(clientID: "as", subject: "u"))
            let both = try await h.issue(IssueRequest(clientID: "as", subject: "u", audiences: ["b", "a"]))
            try await withPublicRouter(h.services) { client in
                for token in [forAPI.accessToken, noAud.accessToken] {
                    let response = try await client.review(reviewBody(token, audiences: [kubeAudience]), as: apiserver)
                    #expect(response.json == unauthenticated(audiences: [kubeAudience]), "\(response.text)")
                }
                // The intersection, in the request's order.
                let answer = try await client.review(reviewBody(both.accessToken, audiences: ["c", "a", "b"]), as: apiserver)
                #expect(answer.json?["status"]?["audiences"] == ["a", "b"], "\(answer.text)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokedTokenStopsAuthenticatingAtOnce(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            let app = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "u"))
            try await withPublicRouter(h.services) { client in
                let before = try await client.review(reviewBody(issued.accessToken), as: apiserver)
                #expect(before.json?["status"]?["authenticated"] == true)
                #expect(try await client.revoke(issued.accessToken, as: app).status == .ok)
                let after = try await client.review(reviewBody(issued.accessToken), as: apiserver)
                #expect(after.json == unauthenticated(), "\(after.text)")
            }
        }
    }

    // MARK: Refused

    @Test(arguments: StoreKind.allCases)
    func anythingButAV1TokenReviewWithATokenIs400(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            _ = try await h.caller("as", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "as", subject: "u")).accessToken
            let v1 = #""apiVersion":"authentication.k8s.io/v1","kind":"TokenReview""#
            let bodies: [(String, String)] = [
                ("empty body", ""),
                ("not JSON", "token=\(token)"),
                ("truncated JSON", #"{\#(v1),"spec":{"token":"\#(token)""#),
                ("JSON array", #"[{\#(v1),"spec":{"token":"\#(token)"}}]"#),
                ("JSON string", #""\#(token)""#),
                ("no spec", "{\(v1)}"),
                ("null spec", #"{\#(v1),"spec":null}"#),
                ("spec without token", #"{\#(v1),"spec":{"audiences":["a"]}}"#),
                ("empty token", #"{\#(v1),"spec":{"token":""}}"#),
                ("token not a string", #"{\#(v1),"spec":{"token":42}}"#),
                ("audiences not strings", #"{\#(v1),"spec":{"token":"\#(token)","audiences":[1]}}"#),
                ("audiences not a list", #"{\#(v1),"spec":{"token":"\#(token)","audiences":"a"}}"#),
                ("wrong kind", #"{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview","spec":{"token":"\#(token)"}}"#),
                ("no kind", #"{"apiVersion":"authentication.k8s.io/v1","spec":{"token":"\#(token)"}}"#),
                ("v1beta1", #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"\#(token)"}}"#),
                ("no apiVersion", #"{"kind":"TokenReview","spec":{"token":"\#(token)"}}"#),
            ]
            try await withPublicRouter(h.services) { client in
                for (label, body) in bodies {
                    let response = try await client.review(ByteBuffer(string: body), as: apiserver)
                    response.expectKubernetesStatus(.badRequest, "BadRequest")
                    #expect(response.status == .badRequest, "\(label)")
                    #expect(!response.text.contains(token), "\(label): the token is echoed")
                }
                // The v1beta1 refusal says how to fix kube-apiserver's flags.
                let beta = try await client.review(
                    ByteBuffer(string: #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"x"}}"#),
                    as: apiserver
                )
                #expect(beta.json?["message"]?.string?.contains("--authentication-token-webhook-version=v1") == true, "\(beta.text)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func missingOrWrongCallerCredentialsAre401AndNoRoleIs403(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            let issuer = try await h.caller("as", [.issue, .revoke])
            let token = try await h.issue(IssueRequest(clientID: "as", subject: "u")).accessToken
            try await withPublicRouter(h.services) { client in
                let authorizations: [(String, String?)] = [
                    ("none", nil),
                    ("wrong secret", basicAuthorization(id: apiserver.id, secret: apiserver.secret + "x")),
                    ("unknown client", basicAuthorization(id: "nobody", secret: apiserver.secret)),
                    ("bearer scheme", "Bearer \(token)"),
                ]
                for (label, authorization) in authorizations {
                    var headers = jsonHeaders
                    if let authorization { headers[.authorization] = authorization }
                    let response = try await client.send(reviewPath, headers: headers, body: reviewBody(token))
                    response.expectKubernetesStatus(.unauthorized, "Unauthorized")
                    #expect(response.headers[.wwwAuthenticate] == #"Basic realm="tokend""#, "\(label)")
                    #expect(response.json?["status"]?["authenticated"] == nil, "\(label)")
                }
                let forbidden = try await client.review(reviewBody(token), as: issuer)
                forbidden.expectKubernetesStatus(.forbidden, "Forbidden")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func storeOutageIs503WithRetryAfter(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            _ = try await h.caller("as", [.issue])
            let token = try await h.issue(IssueRequest(clientID: "as", subject: "u")).accessToken
            let services = h.storeOnlyServices()
            try await withPublicRouter(services) { client in
                #expect(try await client.review(reviewBody(token), as: apiserver).json?["status"]?["authenticated"] == true)
                // The store goes away; the API server still authenticates from the authenticator's cache.
                try await h.takeDown()
                let response = try await client.review(reviewBody(token), as: apiserver)
                response.expectKubernetesStatus(.serviceUnavailable, "ServiceUnavailable")
                #expect(response.headers[.retryAfter] == "1")
                #expect(response.json?["details"] == ["retryAfterSeconds": 1])
                #expect(response.json?["status"]?["authenticated"] == nil, "never a guess")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func otherMethodsAre405AndLargeBodies413(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let apiserver = try await h.caller("kube-apiserver", [.introspect])
            try await withPublicRouter(h.services) { client in
                for method: HTTPRequest.Method in [.get, .put, .patch, .delete] {
                    let response = try await client.send(reviewPath, method: method, headers: jsonHeaders(apiserver))
                    response.expectKubernetesStatus(.methodNotAllowed, "MethodNotAllowed")
                    #expect(response.headers[.allow] == "POST")
                }
                let padding = String(repeating: " ", count: 64 * 1024)
                let large = try await client.review(ByteBuffer(string: padding + #"{"kind":"TokenReview"}"#), as: apiserver)
                large.expectKubernetesStatus(.contentTooLarge, "RequestEntityTooLarge")
            }
        }
    }
}
