import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwiftProtobuf
import Testing
import TokendAPI
import TokendCore
import TokendProto
import TokendTestSupport

/// `tokend.v1.AdminService/*` on the admin router, behind `Authorization: Bearer $TOKEND_ADMIN_TOKEN`.
@Suite struct AdminAPITests {
    static let admin = "Bearer \(testAdminToken)"
    static func path(_ method: String) -> String { "/tokend.v1.AdminService/\(method)" }

    private func createClient(
        _ client: any TestClientProtocol,
        _ id: String,
        roles: [String],
        audiences: [String] = []
    ) async throws -> TestResponse {
        var m = Tokend_V1_CreateClientRequest()
        m.clientID = id
        m.roles = roles
        m.audiences = audiences
        return try await client.connect(Self.path("CreateClient"), m, authorization: Self.admin)
    }

    private func adminRevoke(
        _ client: any TestClientProtocol,
        _ selector: Tokend_V1_AdminRevokeRequest.OneOf_Selector?,
        reason: String = "test"
    ) async throws -> TestResponse {
        var m = Tokend_V1_AdminRevokeRequest()
        m.selector = selector
        m.reason = reason
        return try await client.connect(Self.path("Revoke"), m, authorization: Self.admin)
    }

    private func adminIntrospect(_ client: any TestClientProtocol, _ token: String) async throws -> Tokend_V1_IntrospectResponse {
        var m = Tokend_V1_IntrospectRequest()
        m.token = token
        return try await client.connect(Self.path("Introspect"), m, authorization: Self.admin).message(Tokend_V1_IntrospectResponse.self)
    }

    @Test(arguments: StoreKind.allCases)
    func clientLifecycle(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            try await withAdminRouter(h.services) { admin in
                try await withPublicRouter(h.services) { pub in
                    // CreateClient: the secret authenticates on the public router.
                    let created = try await createClient(admin, "rs:one@example", roles: ["revoke", "introspect"], audiences: ["api"])
                        .message(Tokend_V1_CreateClientResponse.self)
                    #expect(created.clientID == "rs:one@example")
                    #expect(created.roles == ["introspect", "revoke"])
                    #expect(created.audiences == ["api"])
                    #expect(created.clientSecret.count >= 43)
                    let caller = Caller(id: created.clientID, secret: created.clientSecret)
                    let answer = try await pub.introspect(issued.accessToken, as: caller)
                    #expect(answer.status == .ok)
                    #expect(answer.json == ["active": false], "audience api: the token has none")

                    // ListClients, sorted, without secrets.
                    let list = try await admin.connect(Self.path("ListClients"), Tokend_V1_ListClientsRequest(), authorization: Self.admin)
                        .message(Tokend_V1_ListClientsResponse.self)
                    #expect(list.clients.map(\.clientID) == ["as", "rs:one@example"])
                    #expect(list.clients.last?.roles == ["introspect", "revoke"])
                    #expect(list.clients.last?.audiences == ["api"])
                    #expect(list.clients.last?.createdAt == Int64(h.clock.now().timeIntervalSince1970))

                    // RotateClientSecret: the old secret fails, the new one works.
                    var rotate = Tokend_V1_RotateClientSecretRequest()
                    rotate.clientID = caller.id
                    let rotated = try await admin.connect(Self.path("RotateClientSecret"), rotate, authorization: Self.admin)
                        .message(Tokend_V1_RotateClientSecretResponse.self)
                    #expect(rotated.clientID == caller.id)
                    #expect(!rotated.clientSecret.isEmpty && rotated.clientSecret != caller.secret)
                    let old = try await pub.introspect(issued.accessToken, as: caller)
                    old.expectOAuthError(.unauthorized, "invalid_client")
                    let renewed = Caller(id: caller.id, secret: rotated.clientSecret)
                    #expect(try await pub.introspect(issued.accessToken, as: renewed).status == .ok)

                    // DeleteClient: authentication fails afterwards.
                    var delete = Tokend_V1_DeleteClientRequest()
                    delete.clientID = caller.id
                    _ = try await admin.connect(Self.path("DeleteClient"), delete, authorization: Self.admin)
                        .message(Tokend_V1_DeleteClientResponse.self)
                    let deleted = try await pub.introspect(issued.accessToken, as: renewed)
                    deleted.expectOAuthError(.unauthorized, "invalid_client")
                    let after = try await admin.connect(Self.path("ListClients"), Tokend_V1_ListClientsRequest(), authorization: Self.admin)
                        .message(Tokend_V1_ListClientsResponse.self)
                    #expect(after.clients.map(\.clientID) == ["as"])

                    // Deleting or rotating an unknown client: not_found.
                    let again = try await admin.connect(Self.path("DeleteClient"), delete, authorization: Self.admin)
                    again.expectConnectError(.notFound, "not_found")
                    let rotateGone = try await admin.connect(Self.path("RotateClientSecret"), rotate, authorization: Self.admin)
                    rotateGone.expectConnectError(.notFound, "not_found")
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func createClientErrors(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            try await withAdminRouter(h.services) { admin in
                _ = try await createClient(admin, "dup", roles: ["introspect"]).message(Tokend_V1_CreateClientResponse.self)
                let duplicate = try await createClient(admin, "dup", roles: ["issue"])
                duplicate.expectConnectError(.conflict, "already_exists")
                #expect(try await h.store.client(id: "dup")?.roles == [.introspect], "the first client is unchanged")

                let unknownRole = try await createClient(admin, "r", roles: ["introspect", "superuser"])
                unknownRole.expectConnectError(.badRequest, "invalid_argument")
                let badID = try await createClient(admin, "has space", roles: ["introspect"])
                badID.expectConnectError(.badRequest, "invalid_argument")
                let emptyID = try await createClient(admin, "", roles: ["introspect"])
                emptyID.expectConnectError(.badRequest, "invalid_argument")
                #expect(try await h.store.listClients().map(\.id) == ["dup"])
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func issueAndIntrospect(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.caller("as", [.issue])
            let rs = try await h.caller("rs", [.introspect])
            try await withAdminRouter(h.services) { admin in
                var m = Tokend_V1_IssueTokenRequest()
                m.clientID = "as"
                m.subject = "operator-made"
                m.scope = "read"
                m.audiences = ["api"]
                m.ttlSeconds = 90
                m.refresh = true
                m.extra = ["k": "v"]
                let issued = try await admin.connect(Self.path("IssueToken"), m, authorization: Self.admin)
                    .message(Tokend_V1_IssueTokenResponse.self)
                #expect(OpaqueToken.isWellFormed(issued.accessToken) && issued.accessToken.hasPrefix("tkd_at_"))
                #expect(issued.refreshToken.hasPrefix("tkd_rt_"))
                #expect(issued.expiresIn == 90)
                #expect(issued.tokenType == "Bearer")

                let answer = try await adminIntrospect(admin, issued.accessToken)
                #expect(answer.active)
                #expect(answer.clientID == "as" && answer.sub == "operator-made" && answer.scope == "read")
                #expect(answer.aud == ["api"] && answer.ext == ["k": "v"])
                #expect(answer.jti == issued.jti && answer.grantID == issued.grantID)
                #expect(answer.exp == Int64(h.clock.now().timeIntervalSince1970) + 90)
                try await withPublicRouter(h.services) { pub in
                    let active = try await pub.isActive(issued.accessToken, as: rs)
                    #expect(active)
                }

                let unknown = try await adminIntrospect(admin, "tkd_at_" + String(repeating: "k", count: 43))
                #expect(unknown.hasActive && !unknown.active)

                var noClient = Tokend_V1_IssueTokenRequest()
                noClient.subject = "x"
                let missing = try await admin.connect(Self.path("IssueToken"), noClient, authorization: Self.admin)
                missing.expectConnectError(.badRequest, "invalid_argument")
                noClient.clientID = "nobody"
                let unknownClient = try await admin.connect(Self.path("IssueToken"), noClient, authorization: Self.admin)
                unknownClient.expectConnectError(.notFound, "not_found")
                var emptyToken = Tokend_V1_IntrospectRequest()
                emptyToken.token = ""
                let empty = try await admin.connect(Self.path("Introspect"), emptyToken, authorization: Self.admin)
                empty.expectConnectError(.badRequest, "invalid_argument")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokeBySelector(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.caller("as", [.issue])
            _ = try await h.caller("as2", [.issue])
            let byToken = try await h.issue(IssueRequest(clientID: "as"))
            let byJTI = try await h.issue(IssueRequest(clientID: "as"))
            let alice1 = try await h.issue(IssueRequest(clientID: "as", subject: "alice"))
            let alice2 = try await h.issue(IssueRequest(clientID: "as2", subject: "alice", refresh: true))
            let grant = try await h.issue(IssueRequest(clientID: "as", subject: "bob", refresh: true))
            let client2 = try await h.issue(IssueRequest(clientID: "as2", subject: "carol"))
            let keep = try await h.issue(IssueRequest(clientID: "as", subject: "dave"))
            try await withAdminRouter(h.services) { admin in
                func revoked(_ response: TestResponse) throws -> Tokend_V1_AdminRevokeResponse {
                    try response.message(Tokend_V1_AdminRevokeResponse.self)
                }
                func active(_ token: String) async throws -> Bool { try await adminIntrospect(admin, token).active }

                let r1 = try revoked(try await adminRevoke(admin, .token(byToken.accessToken)))
                #expect(r1.revoked == 1 && r1.seq == 1)
                #expect(try await active(byToken.accessToken) == false)

                let r2 = try revoked(try await adminRevoke(admin, .jti(byJTI.access.jti)))
                #expect(r2.revoked == 1 && r2.seq == 2)
                #expect(try await active(byJTI.accessToken) == false)

                let r3 = try revoked(try await adminRevoke(admin, .subject("alice")))
                #expect(r3.revoked == 3 && r3.seq == 3, "alice's two access tokens and one refresh token")
                #expect(try await active(alice1.accessToken) == false)
                #expect(try await active(alice2.accessToken) == false)
                #expect(try await active(try #require(alice2.refreshToken)) == false)

                let r4 = try revoked(try await adminRevoke(admin, .grantID(grant.access.grantID)))
                #expect(r4.revoked == 2 && r4.seq == 4)
                #expect(try await active(grant.accessToken) == false)
                #expect(try await active(try #require(grant.refreshToken)) == false)

                let r5 = try revoked(try await adminRevoke(admin, .clientID("as2")))
                #expect(r5.revoked == 1 && r5.seq == 5, "only carol's token is left unrevoked for as2")
                #expect(try await active(client2.accessToken) == false)

                #expect(try await active(keep.accessToken), "untouched by every selector")

                // Subject and client selectors cover tokens issued up to that moment only.
                h.clock.advance(by: 1)
                let later = try await h.issue(IssueRequest(clientID: "as2", subject: "alice"))
                #expect(try await active(later.accessToken))

                // Nothing matched: nothing logged.
                let none = try revoked(try await adminRevoke(admin, .jti("no-such-jti")))
                #expect(none.revoked == 0 && none.seq == 0)
                let malformed = try revoked(try await adminRevoke(admin, .token("not-a-token")))
                #expect(malformed.revoked == 0 && malformed.seq == 0)
                #expect(try await h.store.revocationHead() == 5)

                // Exactly one selector.
                let noSelector = try await adminRevoke(admin, nil)
                noSelector.expectConnectError(.badRequest, "invalid_argument")
                let emptySubject = try await adminRevoke(admin, .subject(""))
                emptySubject.expectConnectError(.badRequest, "invalid_argument")
                let badReason = try await adminRevoke(admin, .subject("x"), reason: "line\nbreak")
                badReason.expectConnectError(.badRequest, "invalid_argument")
                #expect(try await h.store.revocationHead() == 5)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listRevocationsAndStatus(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.caller("as", [.issue])
            try await withAdminRouter(h.services) { admin in
                let empty = try await admin.connect(Self.path("Status"), Tokend_V1_StatusRequest(), authorization: Self.admin)
                    .message(Tokend_V1_StatusResponse.self)
                #expect(empty.head == 0 && empty.watermark == 0)
                #expect(empty.store == kind.rawValue)

                var tokens: [IssuedTokens] = []
                for subject in ["s1", "s2", "s3"] {
                    tokens.append(try await h.issue(IssueRequest(clientID: "as", subject: subject)))
                }
                for (i, t) in tokens.enumerated() {
                    _ = try await adminRevoke(admin, .jti(t.access.jti), reason: "reason \(i)").message(Tokend_V1_AdminRevokeResponse.self)
                }

                func list(since: Int64, limit: Int32) async throws -> Tokend_V1_ListRevocationsResponse {
                    var m = Tokend_V1_ListRevocationsRequest()
                    m.since = since
                    m.limit = limit
                    return try await admin.connect(Self.path("ListRevocations"), m, authorization: Self.admin)
                        .message(Tokend_V1_ListRevocationsResponse.self)
                }
                let all = try await list(since: 0, limit: 0)
                #expect(all.head == 3)
                #expect(all.entries.map(\.seq) == [1, 2, 3])
                #expect(all.entries.map(\.kind) == ["jti", "jti", "jti"])
                #expect(all.entries.map(\.value) == tokens.map(\.access.jti))
                #expect(all.entries.map(\.reason) == ["reason 0", "reason 1", "reason 2"])
                #expect(all.entries.allSatisfy { $0.revoked == 1 && $0.createdAt == Int64(h.clock.now().timeIntervalSince1970) })
                #expect(!all.entries.contains { e in tokens.contains { e.value.contains($0.accessToken) } }, "never a token in the log")

                let firstTwo = try await list(since: 0, limit: 2)
                #expect(firstTwo.entries.map(\.seq) == [1, 2])
                #expect(firstTwo.head == 3)
                let rest = try await list(since: 2, limit: 10)
                #expect(rest.entries.map(\.seq) == [3])
                let none = try await list(since: 3, limit: 10)
                #expect(none.entries.isEmpty && none.head == 3)
                var negative = Tokend_V1_ListRevocationsRequest()
                negative.since = -1
                let bad = try await admin.connect(Self.path("ListRevocations"), negative, authorization: Self.admin)
                bad.expectConnectError(.badRequest, "invalid_argument")

                let status = try await admin.connect(Self.path("Status"), Tokend_V1_StatusRequest(), authorization: Self.admin)
                    .message(Tokend_V1_StatusResponse.self)
                #expect(status.head == 3)
                #expect(status.watermark == 3)
                #expect(status.store == kind.rawValue)
                #expect(!status.version.isEmpty)

                // JSON codec on the admin API too.
                let json = try await admin.connectJSON(Self.path("Status"), "{}", authorization: Self.admin)
                #expect(json.status == .ok)
                #expect(json.json?["head"] == "3", "\(json.text)")
                #expect(json.json?["store"] == .string(kind.rawValue))
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func adminTokenIsRequired(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect, .issue, .revoke])
            try await withAdminRouter(h.services) { admin in
                let methods: [(String, any SwiftProtobuf.Message)] = [
                    (
                        "CreateClient",
                        {
                            var m = Tokend_V1_CreateClientRequest()
                            m.clientID = "x"
                            m.roles = ["issue"]
                            return m
                        }()
                    ),
                    ("ListClients", Tokend_V1_ListClientsRequest()),
                    (
                        "DeleteClient",
                        {
                            var m = Tokend_V1_DeleteClientRequest()
                            m.clientID = "rs"
                            return m
                        }()
                    ),
                    (
                        "RotateClientSecret",
                        {
                            var m = Tokend_V1_RotateClientSecretRequest()
                            m.clientID = "rs"
                            return m
                        }()
                    ),
                    (
                        "IssueToken",
                        {
                            var m = Tokend_V1_IssueTokenRequest()
                            m.clientID = "rs"
                            return m
                        }()
                    ),
                    (
                        "Introspect",
                        {
                            var m = Tokend_V1_IntrospectRequest()
                            m.token = "x"
                            return m
                        }()
                    ),
                    (
                        "Revoke",
                        {
                            var m = Tokend_V1_AdminRevokeRequest()
                            m.clientID = "rs"
                            return m
                        }()
                    ),
                    ("ListRevocations", Tokend_V1_ListRevocationsRequest()),
                    ("Status", Tokend_V1_StatusRequest()),
                ]
                let authorizations: [String?] = [
                    nil, "Bearer wrong-token", "Bearer \(testAdminToken)x", "Bearer",
                    "Basic \(Data("admin:\(testAdminToken)".utf8).base64EncodedString())",
                    rs.basic, testAdminToken,
                ]
                for (method, message) in methods {
                    for authorization in authorizations {
                        var headers: HTTPFields = [.contentType: "application/proto"]
                        if let authorization { headers[.authorization] = authorization }
                        let response = try await admin.send(
                            Self.path(method),
                            headers: headers,
                            body: ByteBuffer(bytes: try message.serializedBytes() as [UInt8])
                        )
                        response.expectConnectError(.unauthorized, "unauthenticated")
                        #expect(!response.text.contains(testAdminToken))
                    }
                }
                // Nothing happened.
                #expect(try await h.store.listClients().map(\.id) == ["rs"])
                #expect(try await h.store.revocationHead() == 0)
                // The scheme name is case-insensitive.
                let lower = try await admin.send(
                    Self.path("ListClients"),
                    headers: [.contentType: "application/proto", .authorization: "bearer \(testAdminToken)"],
                    body: ByteBuffer()
                )
                #expect(lower.status == .ok)
            }
            // The public router has no admin methods.
            try await withPublicRouter(h.services) { pub in
                let response = try await pub.connect(Self.path("ListClients"), Tokend_V1_ListClientsRequest(), authorization: Self.admin)
                #expect(response.status == .notFound)
                #expect(response.json?["code"] == "unimplemented")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func storeOutageIs503Unavailable(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let services = h.storeOnlyServices()
            try await h.takeDown()
            try await withAdminRouter(services) { admin in
                let list = try await admin.connect(Self.path("ListClients"), Tokend_V1_ListClientsRequest(), authorization: Self.admin)
                list.expectConnectError(.serviceUnavailable, "unavailable")
                let revocations = try await admin.connect(Self.path("ListRevocations"), Tokend_V1_ListRevocationsRequest(), authorization: Self.admin)
                revocations.expectConnectError(.serviceUnavailable, "unavailable")
                let status = try await admin.connect(Self.path("Status"), Tokend_V1_StatusRequest(), authorization: Self.admin)
                status.expectConnectError(.serviceUnavailable, "unavailable")
                let revoke = try await adminRevoke(admin, .subject("x"))
                revoke.expectConnectError(.serviceUnavailable, "unavailable")
                let create = try await createClient(admin, "new", roles: ["issue"])
                create.expectConnectError(.serviceUnavailable, "unavailable")
            }
        }
    }
}
