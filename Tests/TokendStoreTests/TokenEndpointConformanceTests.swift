import Foundation
import Synchronization
import Testing
import TokendCore
import TokendTestSupport

/// The store's part of the token endpoint and of signed introspection (issue 12), on every store:
/// clients' scopes and updates, a refresh token's redemption (one winner, reuse revokes the
/// grant), and the shared signing keys (one current key, whatever runs concurrently).
@Suite struct TokenEndpointConformanceTests {
    // MARK: Clients

    @Test(arguments: StoreKind.conformanceCases)
    func scopesRoundTripAndUpdateReplacesRolesAudiencesAndScopes(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var client = makeClient("job", roles: [.clientCredentials], audiences: ["api://a"])
            client.scopes = ["orders:read", "orders:write"]
            try await store.createClient(client)
            #expect(try await store.client(id: "job") == client)

            var changed = client
            changed.roles = [.introspect, .clientCredentials]
            changed.audiences = []
            changed.scopes = ["orders:read"]
            #expect(try await store.updateClient(changed))
            let read = try #require(try await store.client(id: "job"))
            #expect(read.roles == [.introspect, .clientCredentials])
            #expect(read.audiences.isEmpty)
            #expect(read.scopes == ["orders:read"])
            #expect(read.secretHash == client.secretHash && read.secretSalt == client.secretSalt, "the secret stays")
            #expect(try await store.listClients().first?.scopes == ["orders:read"])

            var nobody = makeClient("nobody")
            nobody.scopes = ["x"]
            #expect(try await store.updateClient(nobody) == false)
            #expect(try await store.client(id: "nobody") == nil)
        }
    }

    // MARK: Redemption

    private static func granter(_ store: any TokendStore) -> TokenGranter {
        let issuer = TokenIssuer(store: store, issuer: "https://tokend.test", now: { t0.addingTimeInterval(60) }, logger: TestEnvironment.logger)
        let revoker = Revoker(store: store, now: { t0.addingTimeInterval(60) }, logger: TestEnvironment.logger)
        return TokenGranter(store: store, issuer: issuer, revoker: revoker, now: { t0.addingTimeInterval(60) }, logger: TestEnvironment.logger)
    }

    /// A grant issued as `TokenIssuer` issues it (so the grant keeps its access lifetime), of client "app".
    private static func issuedGrant(_ store: any TokendStore, scope: String = "read write", ttl: TimeInterval = 600) async throws -> IssuedTokens {
        try await store.createClient(makeClient("app", roles: [.issue]))
        let issuer = TokenIssuer(store: store, issuer: "https://tokend.test", now: { t0 }, logger: TestEnvironment.logger)
        return try await issuer.issue(
            IssueRequest(clientID: "app", subject: "alice", scope: scope, audiences: ["api"], ttl: ttl, refresh: true, extra: ["tenant": "t1"])
        )
    }

    @Test(arguments: StoreKind.conformanceCases)
    func redemptionSpendsTheTokenAndMintsAPairOfTheSameGrant(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let issued = try await Self.issuedGrant(store)
            let app = try #require(try await store.client(id: "app"))
            let old = try #require(issued.refresh)
            let new = try await Self.granter(store).refresh(issued.refreshToken, scope: "read", caller: app)

            let spent = try #require(try await store.token(hash: old.hash))
            #expect(spent.spentAt == t0.addingTimeInterval(60))
            #expect(spent.revokedAt == nil, "spending is not revoking")
            #expect(Introspector.evaluate(spent, audiences: [], at: t0.addingTimeInterval(61)) == .inactive)

            let access = try #require(try await store.token(hash: TokenHash(token: new.accessToken)))
            let newRefresh = try #require(new.refreshToken)
            let refresh = try #require(try await store.token(hash: TokenHash(token: newRefresh)))
            #expect(access.grantID == old.grantID && refresh.grantID == old.grantID)
            #expect(access.scope == "read", "the access token has the narrowed scope")
            #expect(refresh.scope == "read write", "the refresh token keeps the scope originally granted (RFC 6749 §6)")
            #expect(refresh.expiresAt == old.expiresAt, "rotation does not extend the grant")
            #expect(access.expiresAt.timeIntervalSince(access.issuedAt) == 600, "the grant's access lifetime")
            #expect(access.subject == "alice" && access.audiences == ["api"] && access.extra == ["tenant": "t1"])
            #expect(new.refreshToken != issued.refreshToken)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func sixteenConcurrentRedemptionsHaveOneWinnerAndEndTheGrant(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let issued = try await Self.issuedGrant(store)
            let app = try #require(try await store.client(id: "app"))
            let granter = Self.granter(store)
            let token = try #require(issued.refreshToken)
            let outcomes = try await withThrowingTaskGroup(of: Result<IssuedTokens, TokendError>.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        do { return .success(try await granter.refresh(token, scope: nil, caller: app)) } catch let error as TokendError {
                            return .failure(error)
                        }
                    }
                }
                var all: [Result<IssuedTokens, TokendError>] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            let winners = outcomes.compactMap { try? $0.get() }
            let losers = outcomes.compactMap { outcome -> TokendError? in
                if case .failure(let error) = outcome { return error }
                return nil
            }
            #expect(winners.count == 1)
            #expect(losers.count == 15 && losers.allSatisfy { $0.code == .invalidGrant }, "\(losers.map(\.code))")
            // The losers were reuse: the whole grant is revoked, the winner's new pair included,
            // and the revocation is in the log for every replica.
            let winner = try #require(winners.first)
            let winnerRefresh = try #require(winner.refreshToken)
            for t in [winner.accessToken, winnerRefresh, issued.accessToken] {
                #expect(try await store.token(hash: TokenHash(token: t))?.revokedAt != nil)
            }
            let entries = try await log(store)
            #expect(entries.count == 1 && entries.first?.kind == .grant && entries.first?.value == issued.access.grantID)
            let logged = Set(entries.first?.tokenHashes ?? [])
            #expect(logged.contains(TokenHash(token: winner.accessToken)))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func refusedRedemptionsChangeNothing(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let issued = try await Self.issuedGrant(store)
            try await store.createClient(makeClient("other", roles: []))
            let app = try #require(try await store.client(id: "app"))
            let other = try #require(try await store.client(id: "other"))
            let granter = Self.granter(store)
            let token = try #require(issued.refreshToken)
            await expectError(.invalidGrant) { try await granter.refresh(token, scope: nil, caller: other) }
            await expectError(.invalidGrant) { try await granter.refresh(issued.accessToken, scope: nil, caller: app) }
            await expectError(.invalidScope) { try await granter.refresh(token, scope: "read admin", caller: app) }
            await expectError(.invalidRequest) { try await granter.refresh(nil, scope: nil, caller: app) }
            #expect(try await store.token(hash: TokenHash(token: token))?.spentAt == nil)
            #expect(try await log(store).isEmpty)
            // Still redeemable by its owner.
            _ = try await granter.refresh(token, scope: nil, caller: app)
        }
    }

    // MARK: Signing keys

    private static func key(_ kid: String, at time: Date = t0) -> StoredSigningKey {
        StoredSigningKey(kid: kid, algorithm: "ES256", privateKey: Array(repeating: 7, count: 32), createdAt: time, retiresAt: nil)
    }

    @Test(arguments: StoreKind.conformanceCases)
    func concurrentFirstStartsCreateExactlyOneCurrentKey(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let inserted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<8 { group.addTask { try await store.insertFirstSigningKey(Self.key("k\(i)")) } }
                var count = 0
                for try await won in group where won { count += 1 }
                return count
            }
            #expect(inserted == 1)
            let keys = try await store.signingKeys()
            #expect(keys.count == 1 && keys.first?.retiresAt == nil)
            #expect(try await store.insertFirstSigningKey(Self.key("late")) == false)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func rotationRetiresTheCurrentKeyAndDropsExpiredOnes(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.insertFirstSigningKey(Self.key("a")))
            try await store.rotateSigningKey(to: Self.key("b", at: t0.addingTimeInterval(10)), retiring: t0.addingTimeInterval(100))
            var keys = try await store.signingKeys()
            #expect(keys.map(\.kid) == ["b", "a"])
            #expect(keys[0].retiresAt == nil && keys[1].retiresAt == t0.addingTimeInterval(100))
            #expect(keys[0].privateKey == Array(repeating: 7, count: 32))
            // A rotation after "a" retired deletes it.
            try await store.rotateSigningKey(to: Self.key("c", at: t0.addingTimeInterval(200)), retiring: t0.addingTimeInterval(300))
            keys = try await store.signingKeys()
            #expect(keys.map(\.kid) == ["c", "b"])
            #expect(keys.filter { $0.retiresAt == nil }.count == 1)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func keyRingsOverOneStoreAgreeOnTheKeyAndFollowARotation(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // A clock that stands still: a ring re-reads on its own once its keys are a minute old,
            // which a slow run would otherwise reach before the reload below.
            let clock = ManualClock()
            let rings = (0..<4).map { _ in SigningKeyRing(store: store, overlap: 3600, now: clock.now, logger: TestEnvironment.logger) }
            let kids = try await withThrowingTaskGroup(of: String.self) { group in
                for ring in rings { group.addTask { try await ring.current().kid } }
                var kids: Set<String> = []
                for try await kid in group { kids.insert(kid) }
                return kids
            }
            #expect(kids.count == 1, "concurrent first starts: one key")
            let (next, previous) = try await rings[0].rotate()
            #expect(kids == [try #require(previous)])
            #expect(try await rings[0].current().kid == next)
            // Another ring learns it on reload (what NOTIFY 'keys' or the periodic poll triggers).
            #expect(try await rings[1].current().kid == previous)
            try await rings[1].reload()
            #expect(try await rings[1].current().kid == next)
            #expect(Set(try await rings[1].published().map(\.kid)) == [next, previous!], "the previous key stays published")
            #expect(try await rings[1].list().allSatisfy { $0.privateKey.isEmpty }, "listing never hands out private keys")
        }
    }
}
