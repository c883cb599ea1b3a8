import Foundation
import HTTPTypes
import HummingbirdTesting
import SwiftProtobuf
import Testing
import TokendAPI
import TokendCore
import TokendProto
import TokendTestSupport

/// The audit trail through `tokend.v1.AdminService`: every admin RPC that changes something is
/// recorded once with actor `admin` and its request id, reads are not, and ListAuditEvents pages
/// and filters without ever showing a secret or a raw token.
@Suite struct AdminAuditTests {
    static let admin = "Bearer \(testAdminToken)"
    static func path(_ method: String) -> String { "/tokend.v1.AdminService/\(method)" }

    static func list(
        _ client: any TestClientProtocol,
        since: Int64 = 0,
        actor: String = "",
        after: Int64 = 0,
        pageSize: Int32 = 0
    ) async throws -> Tokend_V1_ListAuditEventsResponse {
        var m = Tokend_V1_ListAuditEventsRequest()
        m.since = since
        m.actor = actor
        m.afterSeq = after
        m.pageSize = pageSize
        return try await client.connect(path("ListAuditEvents"), m, authorization: admin).message(Tokend_V1_ListAuditEventsResponse.self)
    }

    @Test(arguments: StoreKind.allCases)
    func everyChangingAdminCallIsRecordedOnceAndReadsAreNot(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            try await withAdminRouter(h.services) { admin in
                func call<M: SwiftProtobuf.Message>(_ method: String, _ m: M) async throws -> TestResponse {
                    let response = try await admin.connect(Self.path(method), m, authorization: Self.admin)
                    #expect(response.status == .ok, "\(method): \(response.text)")
                    return response
                }
                var create = Tokend_V1_CreateClientRequest()
                create.clientID = "audited"
                create.roles = ["introspect"]
                let secret = try await call("CreateClient", create).message(Tokend_V1_CreateClientResponse.self).clientSecret
                var update = Tokend_V1_UpdateClientRequest()
                update.clientID = "audited"
                update.roles = Tokend_V1_StringList.with { $0.values = ["introspect", "revoke"] }
                _ = try await call("UpdateClient", update)
                var rotate = Tokend_V1_RotateClientSecretRequest()
                rotate.clientID = "audited"
                let rotated = try await call("RotateClientSecret", rotate).message(Tokend_V1_RotateClientSecretResponse.self).clientSecret
                var issue = Tokend_V1_IssueTokenRequest()
                issue.clientID = "audited"
                issue.subject = "alice"
                issue.refresh = true
                let issued = try await call("IssueToken", issue).message(Tokend_V1_IssueTokenResponse.self)
                var revoke = Tokend_V1_AdminRevokeRequest()
                revoke.selector = .token(issued.accessToken)
                revoke.reason = "leaked"
                _ = try await call("Revoke", revoke)
                _ = try await call("RotateSigningKey", Tokend_V1_RotateSigningKeyRequest())
                var delete = Tokend_V1_DeleteClientRequest()
                delete.clientID = "audited"
                _ = try await call("DeleteClient", delete)
                // Reads change nothing and are not recorded.
                _ = try await call("ListClients", Tokend_V1_ListClientsRequest())
                _ = try await call("ListRevocations", Tokend_V1_ListRevocationsRequest())
                _ = try await call("ListSigningKeys", Tokend_V1_ListSigningKeysRequest())
                _ = try await call("Status", Tokend_V1_StatusRequest())
                var introspect = Tokend_V1_IntrospectRequest()
                introspect.token = issued.accessToken
                _ = try await call("Introspect", introspect)

                let page = try await Self.list(admin)
                let events = page.events
                #expect(page.nextAfterSeq == 0)
                #expect(
                    events.map(\.action) == [
                        "client.create", "client.update", "client.rotate_secret", "token.issue", "revoke", "signing_key.rotate", "revoke",
                        "client.delete",
                    ]
                )
                #expect(events.allSatisfy { $0.actor == "admin" && !$0.requestID.isEmpty && $0.at == Int64(h.clock.now().timeIntervalSince1970) })
                // One request id per request: DeleteClient's revocation and deletion share theirs.
                #expect(Set(events.map(\.requestID)).count == 7)
                #expect(events[6].requestID == events[7].requestID)
                let hash = TokenHash(token: issued.accessToken)
                #expect(events.map(\.targetKind) == ["client", "client", "client", "grant", "token", "signing_key", "client", "client"])
                #expect(events[3].target == issued.grantID && events[3].detail["jti"] == issued.jti)
                #expect(events[4].target == hash.description && events[4].detail["reason"] == "leaked" && events[4].detail["revoked"] == "1")

                // Never a secret or a raw token, in any form the API can answer.
                let json = try await admin.connectJSON(Self.path("ListAuditEvents"), "{}", authorization: Self.admin).text
                for text in [json, String(describing: events)] {
                    for value in [secret, rotated, issued.accessToken, issued.refreshToken, hash.hex, testAdminToken] {
                        #expect(!text.contains(value), "the audit trail shows a secret or token")
                    }
                    #expect(secretsInLog(text).isEmpty)
                }
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listAuditEventsPagesFiltersAndNeedsTheAdminToken(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            try await withAdminRouter(h.services) { admin in
                for n in 0..<5 {
                    var create = Tokend_V1_CreateClientRequest()
                    create.clientID = "c\(n)"
                    _ = try await admin.connect(Self.path("CreateClient"), create, authorization: Self.admin).message(
                        Tokend_V1_CreateClientResponse.self
                    )
                    h.clock.advance(by: 60)
                }
                let first = try await Self.list(admin, pageSize: 2)
                #expect(first.events.map(\.target) == ["c0", "c1"])
                let second = try await Self.list(admin, after: first.nextAfterSeq, pageSize: 2)
                #expect(second.events.map(\.target) == ["c2", "c3"])
                let last = try await Self.list(admin, after: second.nextAfterSeq, pageSize: 2)
                #expect(last.events.map(\.target) == ["c4"] && last.nextAfterSeq == 0)

                let start = Int64(h.clock.now().timeIntervalSince1970) - 5 * 60
                #expect(try await Self.list(admin, since: start + 180).events.map(\.target) == ["c3", "c4"])
                #expect(try await Self.list(admin, actor: "admin").events.count == 5)
                #expect(try await Self.list(admin, actor: "someone-else").events.isEmpty)

                var bad = Tokend_V1_ListAuditEventsRequest()
                bad.pageSize = -1
                #expect(try await admin.connect(Self.path("ListAuditEvents"), bad, authorization: Self.admin).status == .badRequest)
                let anonymous = try await admin.connect(Self.path("ListAuditEvents"), Tokend_V1_ListAuditEventsRequest(), authorization: nil)
                #expect(anonymous.status == .unauthorized)
            }
        }
    }
}
