import Foundation
import Testing
import TokendCore
import TokendTestSupport

/// The audit trail on both stores: every admin action writes exactly one event in its own
/// transaction, an action that fails or changes nothing writes none, and reads page and filter.
@Suite struct AuditConformanceTests {
    static let operatorContext = AuditContext(actor: "admin", requestID: "req-1")

    /// The admin decisions over `store`, as `Tokend` composes them.
    struct Admin: Sendable {
        let registry: ClientRegistry
        let issuer: TokenIssuer
        let revoker: Revoker
        let keys: SigningKeyRing
        let trail: AuditTrail

        init(_ store: any TokendStore, clock: ManualClock) {
            revoker = Revoker(store: store, now: clock.now, logger: TestEnvironment.logger)
            registry = ClientRegistry(store: store, revoker: revoker, now: clock.now, logger: TestEnvironment.logger)
            issuer = TokenIssuer(store: store, issuer: "https://tokend.test", now: clock.now, logger: TestEnvironment.logger)
            keys = SigningKeyRing(store: store, now: clock.now, logger: TestEnvironment.logger)
            trail = AuditTrail(store: store, logger: TestEnvironment.logger)
        }
    }

    static func all(_ store: any TokendStore) async throws -> [AuditEvent] {
        try await store.auditEvents(since: nil, actor: nil, after: 0, limit: 10_000)
    }

    @Test(arguments: StoreKind.allCases)
    func eachAdminActionRecordsExactlyOneEventWithItsActorRequestAndTarget(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let clock = ManualClock()
            let admin = Admin(store, clock: clock)
            func context(_ n: Int) -> AuditContext { AuditContext(actor: "admin", requestID: "req-\(n)") }

            _ = try await admin.registry.create(id: "rs", roles: ["introspect"], audiences: ["api"], scopes: ["read"], audit: context(1))
            _ = try await admin.registry.update(id: "rs", roles: ["introspect", "revoke"], audiences: nil, scopes: nil, audit: context(2))
            _ = try await admin.registry.rotateSecret(id: "rs", audit: context(3))
            let issued = try await admin.issuer.issue(IssueRequest(clientID: "rs", subject: "alice", refresh: true), audit: context(4))
            _ = try await admin.revoker.revoke(.token(TokenHash(token: issued.accessToken)), reason: "leaked", audit: context(5))
            _ = try await admin.revoker.revoke(.subject("alice"), reason: "left", audit: context(6))
            let (kid, previous) = try await admin.keys.rotate(audit: context(7))
            try await admin.registry.delete(id: "rs", audit: context(8))

            let events = try await Self.all(store)
            #expect(
                events.map(\.action) == [
                    .clientCreate, .clientUpdate, .clientRotateSecret, .tokenIssue, .revoke, .revoke, .signingKeyRotate, .revoke, .clientDelete,
                ]
            )
            #expect(events.map(\.requestID) == ["req-1", "req-2", "req-3", "req-4", "req-5", "req-6", "req-7", "req-8", "req-8"])
            #expect(events.allSatisfy { $0.actor == "admin" && $0.at == clock.now() })
            #expect(events.map(\.seq) == events.map(\.seq).sorted() && Set(events.map(\.seq)).count == events.count)
            let targets = events.map { "\($0.targetKind.rawValue):\($0.target)" }
            #expect(
                targets == [
                    "client:rs", "client:rs", "client:rs", "grant:\(issued.access.grantID)",
                    "token:\(TokenHash(token: issued.accessToken).description)", "subject:alice", "signing_key:\(kid)", "client:rs", "client:rs",
                ]
            )
            #expect(events[0].detail == ["roles": "introspect", "audiences": "api", "scopes": "read"])
            #expect(events[1].detail["roles"] == "introspect revoke")
            #expect(events[3].detail["client_id"] == "rs" && events[3].detail["subject"] == "alice" && events[3].detail["refresh"] == "true")
            #expect(events[3].detail["jti"] == issued.access.jti)
            #expect(events[4].detail["reason"] == "leaked" && events[4].detail["revoked"] == "1")
            #expect(events[5].detail["revoked"] == "1", "the refresh token was still live")
            #expect(events[6].detail["previous_kid"] == previous)
            #expect(events[7].detail["reason"] == "client deleted")

            // Nothing that could authenticate or be presented is in the trail.
            let text = events.map { "\($0.target) \($0.detail)" }.joined(separator: "\n")
            for secret in [issued.accessToken, issued.refreshToken!] { #expect(!text.contains(secret)) }
            #expect(!text.contains(TokenHash(token: issued.accessToken).hex), "only a prefix of a token's hash")
            #expect(secretsInLog(text).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func actionsThatFailOrChangeNothingRecordNothing(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let admin = Admin(store, clock: ManualClock())
            let context = Self.operatorContext
            await expectError(.notFound) { try await admin.registry.update(id: "ghost", roles: [], audiences: nil, scopes: nil, audit: context) }
            await expectError(.notFound) { try await admin.registry.rotateSecret(id: "ghost", audit: context) }
            await expectError(.notFound) { try await admin.registry.delete(id: "ghost", audit: context) }
            await expectError(.notFound) { try await admin.issuer.issue(IssueRequest(clientID: "ghost"), audit: context) }
            await expectError(.invalidRequest) { try await admin.registry.create(id: "bad id", roles: [], audiences: [], audit: context) }
            #expect(try await Self.all(store).isEmpty)

            _ = try await admin.registry.create(id: "dup", roles: [], audiences: [], audit: context)
            await expectError(.alreadyExists) { try await admin.registry.create(id: "dup", roles: [], audiences: [], audit: context) }
            #expect(try await Self.all(store).map(\.action) == [.clientCreate])

            // Unaudited writes (the token endpoint, fixtures) record nothing.
            _ = try await admin.issuer.issue(IssueRequest(clientID: "dup"))
            #expect(try await Self.all(store).count == 1)
        }
    }

    /// The event is part of the action's transaction: when the transaction fails after the
    /// event was appended, neither is kept.
    @Test(arguments: StoreKind.allCases)
    func aFailedTransactionKeepsNoEvent(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            struct Abort: Error {}
            let event = Self.operatorContext.event(.revoke, .subject, "alice", at: t0)
            await #expect(throws: Abort.self) {
                try await store.withRevocationTransaction { tx async throws -> Void in
                    try await tx.record(event)
                    _ = try await tx.append(
                        NewRevocationEntry(
                            kind: .subject,
                            value: "alice",
                            tokenHashes: [],
                            reason: "",
                            revokedCount: 0,
                            createdAt: t0,
                            expiresAt: t0
                        )
                    )
                    throw Abort()
                }
            }
            #expect(try await log(store).isEmpty)

            // Tokens whose insert fails (a hash stored already) take their event with them.
            let token = mint()
            try await store.insertTokens([token.record])
            await #expect(throws: (any Error).self) {
                try await store.insertTokens([token.record], audit: Self.operatorContext.event(.tokenIssue, .grant, token.record.grantID, at: t0))
            }
            // So does a key rotation to a kid that exists already.
            let key = StoredSigningKey(kid: "k1", algorithm: "ES256", privateKey: [1], createdAt: t0, retiresAt: nil)
            #expect(try await store.insertFirstSigningKey(key))
            await #expect(throws: (any Error).self) {
                try await store.rotateSigningKey(
                    to: key,
                    retiring: t0,
                    audit: Self.operatorContext.event(.signingKeyRotate, .signingKey, "k1", at: t0)
                )
            }
            #expect(try await Self.all(store).isEmpty)

            // The same writes that succeed keep theirs.
            try await store.withRevocationTransaction { tx in try await tx.record(event) }
            #expect(try await Self.all(store).map(\.target) == ["alice"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func eventsRoundTripAndPageBySeqWithSinceAndActorFilters(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // Seven events, a minute apart, alternately by two actors.
            for n in 0..<7 {
                let context = AuditContext(actor: n.isMultiple(of: 2) ? "alice" : "bob", requestID: "r\(n)")
                let event = context.event(
                    .revoke,
                    .subject,
                    "s\(n)",
                    detail: ["n": "\(n)", "quote": "\"é\""],
                    at: t0.addingTimeInterval(Double(n) * 60)
                )
                try await store.withRevocationTransaction { tx in try await tx.record(event) }
            }
            let all = try await Self.all(store)
            #expect(all.map(\.target) == (0..<7).map { "s\($0)" })
            #expect(all[3].detail == ["n": "3", "quote": "\"é\""] && all[3].requestID == "r3" && all[3].at == t0.addingTimeInterval(180))

            #expect(try await store.auditEvents(since: nil, actor: "bob", after: 0, limit: 100).map(\.target) == ["s1", "s3", "s5"])
            #expect(
                try await store.auditEvents(since: t0.addingTimeInterval(120), actor: nil, after: 0, limit: 100).map(\.target) == [
                    "s2", "s3", "s4", "s5", "s6",
                ]
            )
            #expect(
                try await store.auditEvents(since: t0.addingTimeInterval(121), actor: "alice", after: 0, limit: 100).map(\.target) == ["s4", "s6"]
            )
            #expect(try await store.auditEvents(since: nil, actor: nil, after: all[4].seq, limit: 100).map(\.target) == ["s5", "s6"])
            #expect(try await store.auditEvents(since: nil, actor: "carol", after: 0, limit: 100).isEmpty)

            // AuditTrail pages: the cursor of each page leads to the next; the last page says 0.
            let trail = AuditTrail(store: store, logger: TestEnvironment.logger)
            var seen: [String] = []
            var after: Int64 = 0
            var pages = 0
            repeat {
                let (events, next) = try await trail.page(since: nil, actor: "alice", after: after, pageSize: 3)
                #expect(events.count <= 3)
                seen += events.map(\.target)
                after = next
                pages += 1
            } while after != 0 && pages < 10
            #expect(seen == ["s0", "s2", "s4", "s6"])
            #expect(pages == 2)
            let exact = try await trail.page(since: nil, actor: "alice", after: 0, pageSize: 4)
            #expect(exact.events.count == 4 && exact.next == 0, "a full last page has no next page")
            await expectError(.invalidRequest) { try await trail.page(since: nil, actor: nil, after: -1, pageSize: 0) }
        }
    }
}
