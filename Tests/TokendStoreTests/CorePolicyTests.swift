import Foundation
import Testing
import TokendCore
import TokendTestSupport

/// Introspector, Revoker, TokenIssuer, ClientAuthenticator and ClientRegistry on a real store,
/// with a manual clock.
struct Harness: Sendable {
    let store: any TokendStore
    let clock: ManualClock
    let authenticator: ClientAuthenticator
    let registry: ClientRegistry
    let issuer: TokenIssuer
    let introspector: Introspector
    let revoker: Revoker

    init(_ store: any TokendStore) {
        self.store = store
        let clock = ManualClock()
        self.clock = clock
        authenticator = ClientAuthenticator(store: store, now: clock.now)
        registry = ClientRegistry(store: store, authenticator: authenticator, now: clock.now)
        issuer = TokenIssuer(store: store, issuer: "https://tokend.test", now: clock.now, logger: TestEnvironment.logger)
        introspector = Introspector(store: store, now: clock.now, logger: TestEnvironment.logger)
        revoker = Revoker(store: store, now: clock.now, logger: TestEnvironment.logger)
    }

    func isActive(_ token: String, audiences: [String] = []) async throws -> Bool {
        if case .active = try await introspector.introspect(token: token, audiences: audiences) { return true }
        return false
    }

    /// A registered client and its secret.
    func client(_ id: String, roles: [String] = [], audiences: [String] = []) async throws -> (ClientRecord, String) {
        let (record, secret) = try await registry.create(id: id, roles: roles, audiences: audiences)
        return (record, secret)
    }
}

func withHarness(_ kind: StoreKind, _ body: @Sendable (Harness) async throws -> Void) async throws {
    try await withStore(kind) { store in try await body(Harness(store)) }
}

@Suite struct IntrospectionPolicyTests {
    @Test(arguments: StoreKind.conformanceCases)
    func issuedTokenIsActiveUntilItsExpiry(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            let issued = try await h.issuer.issue(
                IssueRequest(
                    clientID: "as",
                    subject: "alice",
                    username: "alice@example.com",
                    scope: "read write",
                    audiences: ["api"],
                    ttl: 60,
                    extra: ["tenant": "acme"]
                )
            )
            #expect(issued.expiresIn == 60)
            #expect(issued.accessToken.hasPrefix("tkd_at_"))
            #expect(issued.refreshToken == nil)
            #expect(issued.access.issuedAt == t0)
            #expect(issued.access.expiresAt == t0.addingTimeInterval(60))

            let result = try await h.introspector.introspect(token: issued.accessToken, audiences: [])
            #expect(result == .active(issued.access))
            guard case .active(let record) = result else { return }
            #expect(record.subject == "alice")
            #expect(record.username == "alice@example.com")
            #expect(record.scope == "read write")
            #expect(record.audiences == ["api"])
            #expect(record.issuer == "https://tokend.test")
            #expect(record.extra == ["tenant": "acme"])
            #expect(record.tokenType == "Bearer")

            h.clock.advance(by: 59)
            #expect(try await h.isActive(issued.accessToken))
            h.clock.advance(by: 1)  // now == exp
            #expect(try await h.introspector.introspect(token: issued.accessToken, audiences: []) == .inactive)
            h.clock.advance(by: 3600)
            #expect(try await h.isActive(issued.accessToken) == false)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func notBeforeInTheFutureIsInactiveUntilReached(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            let issued = try await h.issuer.issue(
                IssueRequest(
                    clientID: "as",
                    subject: "alice",
                    ttl: 3600,
                    notBefore: t0.addingTimeInterval(100)
                )
            )
            #expect(issued.access.notBefore == t0.addingTimeInterval(100))
            #expect(try await h.isActive(issued.accessToken) == false)
            h.clock.advance(by: 99)
            #expect(try await h.isActive(issued.accessToken) == false)
            h.clock.advance(by: 1)  // now == nbf
            #expect(try await h.isActive(issued.accessToken))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func callerAudiencesRestrictWhatIsActive(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            let scoped = try await h.issuer.issue(IssueRequest(clientID: "as", subject: "alice", audiences: ["api-a", "api-b"]))
            let unscoped = try await h.issuer.issue(IssueRequest(clientID: "as", subject: "alice"))

            #expect(try await h.isActive(scoped.accessToken, audiences: ["api-c"]) == false)
            #expect(try await h.isActive(scoped.accessToken, audiences: ["api-c", "api-b"]))
            #expect(try await h.isActive(scoped.accessToken, audiences: ["api-a"]))
            #expect(try await h.isActive(scoped.accessToken, audiences: []))
            #expect(try await h.isActive(scoped.accessToken, audiences: ["API-A"]) == false)

            #expect(try await h.isActive(unscoped.accessToken, audiences: ["api-a"]) == false)
            #expect(try await h.isActive(unscoped.accessToken, audiences: []))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func malformedUnknownAndOversizedTokensAreInactive(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            let issued = try await h.issuer.issue(IssueRequest(clientID: "as", subject: "alice", refresh: true))
            let real = issued.accessToken
            let candidates = [
                "",
                "garbage",
                String(real.dropLast()),
                real + "A",
                "tkd_xx_" + real.dropFirst(7),
                "tkd_at_" + String(repeating: "!", count: 43),
                real.uppercased(),
                " " + real,
                real + "\n",
                OpaqueToken.generate(.access),  // well-formed, never issued
                OpaqueToken.generate(.refresh),
                String(repeating: "A", count: 10 * 1024),
                real + String(repeating: "A", count: 10 * 1024),
                String(repeating: real, count: 200),
            ]
            for token in candidates {
                #expect(try await h.introspector.introspect(token: token, audiences: []) == .inactive, "\(token.prefix(60))")
            }
            // The real ones are still active: the checks above failed for the right reason.
            #expect(try await h.isActive(real))
            #expect(try await h.isActive(try #require(issued.refreshToken)))
        }
    }
}

@Suite struct RevokerPolicyTests {
    @Test(arguments: StoreKind.conformanceCases)
    func clientWithoutRoleRevokeCannotRevokeAnotherClientsToken(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("owner", roles: ["issue"])
            let (other, _) = try await h.client("other", roles: ["introspect", "issue"])
            let issued = try await h.issuer.issue(IssueRequest(clientID: "owner", subject: "alice", refresh: true))

            await expectError(.notOwner) { try await h.revoker.revoke(token: issued.accessToken, caller: other) }
            await expectError(.notOwner) { try await h.revoker.revoke(token: try #require(issued.refreshToken), caller: other) }
            #expect(try await h.isActive(issued.accessToken))
            #expect(try await h.store.token(hash: issued.access.hash)?.revokedAt == nil)
            #expect(try await h.store.revocationHead() == 0)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func clientWithRoleRevokeCanRevokeAnyToken(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("owner", roles: ["issue"])
            let (admin, _) = try await h.client("admin", roles: ["revoke"])
            let issued = try await h.issuer.issue(IssueRequest(clientID: "owner", subject: "alice"))
            try await h.revoker.revoke(token: issued.accessToken, caller: admin)
            #expect(try await h.isActive(issued.accessToken) == false)
            #expect(try await h.store.token(hash: issued.access.hash)?.revokedAt == t0)
            let entry = try #require(try await log(h.store).last)
            #expect(entry.kind == .token)
            #expect(entry.value == issued.access.jti)
            #expect(entry.reason.contains("admin"))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func clientCanRevokeItsOwnToken(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (owner, _) = try await h.client("owner", roles: [])
            let issued = try await h.issuer.issue(IssueRequest(clientID: "owner", subject: "alice"))
            let untouched = try await h.issuer.issue(IssueRequest(clientID: "owner", subject: "alice"))
            h.clock.advance(by: 5)
            try await h.revoker.revoke(token: issued.accessToken, caller: owner)
            #expect(try await h.isActive(issued.accessToken) == false)
            #expect(try await h.store.token(hash: issued.access.hash)?.revokedAt == t0.addingTimeInterval(5))
            #expect(try await h.isActive(untouched.accessToken))
            // Revoking again is a no-op that succeeds.
            try await h.revoker.revoke(token: issued.accessToken, caller: owner)
            #expect(try await log(h.store).count == 1)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingARefreshTokenMakesItsAccessTokenInactive(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (owner, _) = try await h.client("owner", roles: ["issue"])
            let issued = try await h.issuer.issue(IssueRequest(clientID: "owner", subject: "alice", refresh: true))
            let otherGrant = try await h.issuer.issue(IssueRequest(clientID: "owner", subject: "alice", refresh: true))
            let refresh = try #require(issued.refreshToken)
            #expect(issued.refresh?.grantID == issued.access.grantID)
            #expect(try await h.isActive(issued.accessToken))

            try await h.revoker.revoke(token: refresh, caller: owner)
            #expect(try await h.isActive(issued.accessToken) == false)
            #expect(try await h.isActive(refresh) == false)
            #expect(try await h.isActive(otherGrant.accessToken))
            #expect(try await h.isActive(try #require(otherGrant.refreshToken)))
            let entry = try #require(try await log(h.store).last)
            #expect(entry.kind == .grant)
            #expect(entry.value == issued.access.grantID)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func unknownAndMalformedTokensAreRevokedWithoutEffect(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (caller, _) = try await h.client("caller", roles: [])
            for token in ["", "nonsense", OpaqueToken.generate(.access), OpaqueToken.generate(.refresh), String(repeating: "x", count: 10_000)] {
                try await h.revoker.revoke(token: token, caller: caller)
            }
            #expect(try await h.store.revocationHead() == 0)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func selectorRevocationValidatesItsInput(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            await expectError(.invalidRequest) { try await h.revoker.revoke(.subject(""), reason: "x") }
            await expectError(.invalidRequest) { try await h.revoker.revoke(.client(String(repeating: "c", count: 1025)), reason: "x") }
            await expectError(.invalidRequest) { try await h.revoker.revoke(.grant("g"), reason: "line\nbreak") }
            #expect(try await h.store.revocationHead() == 0)

            _ = try await h.client("as", roles: ["issue"])
            let issued = try await h.issuer.issue(IssueRequest(clientID: "as", subject: "bob"))
            h.clock.advance(by: 1)
            let outcome = try await h.revoker.revoke(.subject("bob"), reason: "offboarded")
            #expect(outcome.revoked == 1)
            #expect(try await h.isActive(issued.accessToken) == false)
            #expect(try await h.store.token(hash: issued.access.hash)?.revokedAt == t0.addingTimeInterval(1))
            let later = try await h.issuer.issue(IssueRequest(clientID: "as", subject: "bob"))
            #expect(try await h.isActive(later.accessToken))
        }
    }
}

@Suite struct ClientAuthenticationTests {
    @Test(arguments: StoreKind.conformanceCases)
    func rightSecretAuthenticatesWrongSecretAndUnknownIDDoNot(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (created, secret) = try await h.client("rs", roles: ["introspect"], audiences: ["api"])
            let (_, otherSecret) = try await h.client("rs2", roles: ["introspect"])
            let record = try await h.authenticator.authenticate(clientID: "rs", secret: secret)
            #expect(record == created)
            #expect(record.roles == [.introspect])
            #expect(record.audiences == ["api"])

            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "rs", secret: secret + "x") }
            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "rs", secret: otherSecret) }
            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "rs", secret: "") }
            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "nobody", secret: secret) }
            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "", secret: secret) }
            await expectError(.unauthenticated) {
                try await h.authenticator.authenticate(clientID: String(repeating: "a", count: 200), secret: secret)
            }
            // Still fine after the failures.
            #expect(try await h.authenticator.authenticate(clientID: "rs", secret: secret).id == "rs")
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func rotatedSecretReplacesTheOldOneAtOnce(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (_, old) = try await h.client("rs", roles: ["introspect"])
            // Cached now.
            #expect(try await h.authenticator.authenticate(clientID: "rs", secret: old).id == "rs")
            let new = try await h.registry.rotateSecret(id: "rs")
            #expect(new != old)
            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "rs", secret: old) }
            #expect(try await h.authenticator.authenticate(clientID: "rs", secret: new).id == "rs")
            await expectError(.notFound) { try await h.registry.rotateSecret(id: "nobody") }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func anotherReplicaSeesARotationWithinTheRecordTTL(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (_, old) = try await h.client("rs", roles: ["introspect"])
            let replica = ClientAuthenticator(store: h.store, now: h.clock.now, recordTTL: 2)
            #expect(try await replica.authenticate(clientID: "rs", secret: old).id == "rs")
            let new = try await h.registry.rotateSecret(id: "rs")
            h.clock.advance(by: 2.5)
            await expectError(.unauthenticated) { try await replica.authenticate(clientID: "rs", secret: old) }
            #expect(try await replica.authenticate(clientID: "rs", secret: new).id == "rs")
        }
    }

    /// The HTTP fast path's authentication: only a cached, current client with its right secret,
    /// from an address not past the guessing limit; everything else is left to `authenticate`,
    /// with nothing counted.
    @Test(arguments: StoreKind.conformanceCases)
    func authenticationFromTheCacheAnswersOnlyWhatAuthenticateWould(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (_, secret) = try await h.client("rs", roles: ["introspect"])
            let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 2), now: h.clock.now)
            let replica = ClientAuthenticator(store: h.store, now: h.clock.now, recordTTL: 2, limiter: limiter)
            #expect(replica.authenticateFromCache(clientID: "rs", secret: secret, source: "10.0.0.1") == nil, "not cached yet")
            #expect(try await replica.authenticate(clientID: "rs", secret: secret, source: "10.0.0.1").id == "rs")
            #expect(replica.authenticateFromCache(clientID: "rs", secret: secret, source: "10.0.0.1")?.id == "rs")
            for _ in 0..<2 { #expect(replica.authenticateFromCache(clientID: "rs", secret: secret + "x", source: "10.0.0.2") == nil) }
            // Those wrong secrets were not counted: the address is not limited.
            #expect(replica.authenticateFromCache(clientID: "rs", secret: secret, source: "10.0.0.2")?.id == "rs")
            for _ in 0..<2 {
                await expectError(.unauthenticated) { try await replica.authenticate(clientID: "rs", secret: secret + "x", source: "10.0.0.2") }
            }
            await expectError(.tooManyRequests) { try await replica.authenticate(clientID: "rs", secret: secret + "x", source: "10.0.0.2") }
            // Past the limit for rs, that address gets nothing from the cache, even with the secret.
            #expect(replica.authenticateFromCache(clientID: "rs", secret: secret, source: "10.0.0.2") == nil)
            await expectError(.tooManyRequests) { try await replica.authenticate(clientID: "rs", secret: secret, source: "10.0.0.2") }
            h.clock.advance(by: 2.5)
            #expect(replica.authenticateFromCache(clientID: "rs", secret: secret, source: "10.0.0.1") == nil, "the record is past its TTL")
        }
    }

    /// What a connection remembers of a verified secret holds only while the cached entry that
    /// verified it does: not past its TTL, not once it is reloaded from the store or invalidated
    /// (a rotation through this replica), and not from an address past the guessing limit.
    @Test(arguments: StoreKind.conformanceCases)
    func aRememberedVerificationHoldsOnlyWhileItsCachedEntryDoes(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (_, secret) = try await h.client("rs", roles: ["introspect"])
            let limiter = GuessLimiter(limits: .init(authFailuresPerMinute: 2), now: h.clock.now)
            let replica = ClientAuthenticator(store: h.store, now: h.clock.now, recordTTL: 2, limiter: limiter)
            #expect(try await replica.authenticate(clientID: "rs", secret: secret, source: "10.0.0.1").id == "rs")
            #expect(replica.verifyFromCache(clientID: "rs", secret: secret + "x", source: "10.0.0.1") == nil)
            let verified = try #require(replica.verifyFromCache(clientID: "rs", secret: secret, source: "10.0.0.1")?.verified)
            #expect(replica.authenticateRemembered(verified, source: "10.0.0.1")?.id == "rs")
            // Past the guessing limit, that address gets nothing from it.
            for _ in 0..<3 { _ = try? await replica.authenticate(clientID: "rs", secret: secret + "x", source: "10.0.0.2") }
            #expect(replica.authenticateRemembered(verified, source: "10.0.0.2") == nil)
            #expect(replica.authenticateRemembered(verified, source: "10.0.0.1")?.id == "rs")
            // Past the entry's TTL; and a reload (the same secret) is another entry, to verify anew.
            h.clock.advance(by: 2.5)
            #expect(replica.authenticateRemembered(verified, source: "10.0.0.1") == nil)
            #expect(try await replica.authenticate(clientID: "rs", secret: secret, source: "10.0.0.1").id == "rs")
            #expect(replica.authenticateRemembered(verified, source: "10.0.0.1") == nil)
            let again = try #require(replica.verifyFromCache(clientID: "rs", secret: secret, source: "10.0.0.1")?.verified)
            #expect(replica.authenticateRemembered(again, source: "10.0.0.1")?.id == "rs")
            replica.invalidate(clientID: "rs")
            #expect(replica.authenticateRemembered(again, source: "10.0.0.1") == nil)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func deletedClientCannotAuthenticate(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (_, secret) = try await h.client("rs", roles: ["introspect"])
            _ = try await h.client("keep", roles: ["introspect"])
            #expect(try await h.authenticator.authenticate(clientID: "rs", secret: secret).id == "rs")
            try await h.registry.delete(id: "rs")
            await expectError(.unauthenticated) { try await h.authenticator.authenticate(clientID: "rs", secret: secret) }
            #expect(try await h.registry.list().map(\.id) == ["keep"])
            await expectError(.notFound) { try await h.registry.delete(id: "rs") }
        }
    }

    /// Deleting a client with live tokens revokes every one of them first (one `client` entry in the
    /// log), so a deleted client's tokens never stay active; another client's tokens are untouched.
    @Test(arguments: StoreKind.conformanceCases)
    func deletingAClientRevokesItsLiveTokens(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let registry = ClientRegistry(store: h.store, authenticator: h.authenticator, revoker: h.revoker, now: h.clock.now)
            _ = try await h.client("app", roles: ["introspect"])
            _ = try await h.client("keep", roles: ["introspect"])
            let pair = try await h.issuer.issue(IssueRequest(clientID: "app", subject: "alice", refresh: true))
            let second = try await h.issuer.issue(IssueRequest(clientID: "app", subject: "bob")).accessToken
            let other = try await h.issuer.issue(IssueRequest(clientID: "keep", subject: "carol")).accessToken
            for token in [pair.accessToken, pair.refreshToken!, second, other] { #expect(try await h.isActive(token)) }
            h.clock.advance(by: 1)
            try await registry.delete(id: "app")
            for token in [pair.accessToken, pair.refreshToken!, second] { #expect(try await !h.isActive(token)) }
            #expect(try await h.isActive(other))
            let log = try await h.store.revocations(after: 0, limit: 10)
            #expect(log.count == 1 && log.first?.kind == .client && log.first?.value == "app" && log.first?.reason == "client deleted", "\(log)")
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func registryValidatesAndSorts(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            await expectError(.invalidRequest) { try await h.registry.create(id: "bad id", roles: [], audiences: []) }
            await expectError(.invalidRequest) { try await h.registry.create(id: "ok", roles: ["admin"], audiences: []) }
            await expectError(.invalidRequest) { try await h.registry.create(id: "ok", roles: [], audiences: ["has space"]) }
            #expect(try await h.registry.list().isEmpty)

            let (created, secret) = try await h.registry.create(id: "b-client", roles: ["revoke", "issue"], audiences: ["x"])
            #expect(created.roles == [.revoke, .issue])
            #expect(created.createdAt == t0)
            #expect(ClientSecret.verify(secret, salt: created.secretSalt, hash: created.secretHash))
            #expect(try await h.store.client(id: "b-client") == created)
            await expectError(.alreadyExists) { try await h.registry.create(id: "b-client", roles: [], audiences: []) }
            _ = try await h.registry.create(id: "Z-client", roles: [], audiences: [])
            _ = try await h.registry.create(id: "a-client", roles: [], audiences: [])
            #expect(try await h.registry.list().map(\.id) == ["Z-client", "a-client", "b-client"])
        }
    }
}

@Suite struct TokenIssuerTests {
    @Test(arguments: StoreKind.conformanceCases)
    func invalidRequestsAreRejectedAndStoreNothing(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            let bad: [(String, IssueRequest)] = [
                ("quote in scope", IssueRequest(clientID: "as", scope: "read \"write\"")),
                ("backslash in scope", IssueRequest(clientID: "as", scope: "a\\b")),
                ("double space in scope", IssueRequest(clientID: "as", scope: "read  write")),
                ("leading space in scope", IssueRequest(clientID: "as", scope: " read")),
                ("non-ASCII scope", IssueRequest(clientID: "as", scope: "lecture-é")),
                ("tab in scope", IssueRequest(clientID: "as", scope: "read\twrite")),
                ("ttl 0", IssueRequest(clientID: "as", ttl: 0)),
                ("negative ttl", IssueRequest(clientID: "as", ttl: -5)),
                ("ttl over 366 days", IssueRequest(clientID: "as", ttl: TokenIssuer.maximumTTL + 1)),
                ("refresh ttl 0", IssueRequest(clientID: "as", refresh: true, refreshTTL: 0)),
                ("refresh ttl over 366 days", IssueRequest(clientID: "as", refresh: true, refreshTTL: 367 * 86400)),
                ("reserved claim sub", IssueRequest(clientID: "as", extra: ["sub": "mallory"])),
                ("reserved claim active", IssueRequest(clientID: "as", extra: ["active": "true"])),
                ("reserved claim exp", IssueRequest(clientID: "as", extra: ["exp": "0"])),
                ("empty claim name", IssueRequest(clientID: "as", extra: ["": "x"])),
                ("control character in claim", IssueRequest(clientID: "as", extra: ["note": "a\u{0}b"])),
                ("control character in subject", IssueRequest(clientID: "as", subject: "al\nice")),
                ("audience with space", IssueRequest(clientID: "as", audiences: ["a b"])),
                ("bad client id", IssueRequest(clientID: "as/../x")),
            ]
            for (label, request) in bad {
                do {
                    let issued = try await h.issuer.issue(request)
                    Issue.record("\(label): issued \(issued.access.jti)")
                } catch let error as TokendError {
                    #expect(error.code == .invalidRequest, "\(label): \(error.message)")
                }
            }
            // Nothing was stored: a client revocation finds no token.
            #expect(try await h.store.revoke(.client("as"), reason: "", at: t0).revoked == 0)
        }
    }

    /// Control characters in an audience or a selector value: PostgreSQL cannot store NUL in text,
    /// so without validation the same request is accepted by SQLite and becomes `unavailable` (503)
    /// on PostgreSQL. Both must answer `invalidRequest`.
    @Test(arguments: StoreKind.conformanceCases)
    func controlCharactersInAudiencesAndSelectorsAreInvalidRequests(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            await expectError(.invalidRequest) { try await h.issuer.issue(IssueRequest(clientID: "as", audiences: ["a\u{0}b"])) }
            await expectError(.invalidRequest) { try await h.registry.create(id: "rs", roles: [], audiences: ["x\u{1}y"]) }
            await expectError(.invalidRequest) { try await h.revoker.revoke(.subject("a\u{0}b"), reason: "") }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func unknownClientIsNotFound(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            await expectError(.notFound) { try await h.issuer.issue(IssueRequest(clientID: "ghost", subject: "alice")) }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func boundariesAndRefreshGrantsAreStoredAsIssued(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            let shortest = try await h.issuer.issue(IssueRequest(clientID: "as", ttl: 1))
            #expect(shortest.expiresIn == 1)
            let longest = try await h.issuer.issue(IssueRequest(clientID: "as", ttl: TokenIssuer.maximumTTL))
            #expect(longest.access.expiresAt == t0.addingTimeInterval(TokenIssuer.maximumTTL))
            let defaults = try await h.issuer.issue(IssueRequest(clientID: "as", scope: "", refresh: true))
            #expect(defaults.expiresIn == Int64(TokenIssuer.defaultTTL))
            #expect(defaults.access.scope == nil)
            #expect(defaults.access.subject == nil)
            let refresh = try #require(defaults.refresh)
            #expect(refresh.kind == .refresh)
            #expect(refresh.expiresAt == t0.addingTimeInterval(TokenIssuer.defaultRefreshTTL))
            #expect(try #require(defaults.refreshToken).hasPrefix("tkd_rt_"))
            #expect(refresh.grantID == defaults.access.grantID)
            #expect(refresh.jti != defaults.access.jti)

            let bound = try await h.issuer.issue(
                IssueRequest(
                    clientID: "as",
                    subject: "alice",
                    refresh: true,
                    confirmation: Confirmation(jkt: "thumb"),
                    extra: ["tenant": "acme"]
                )
            )
            #expect(bound.access.tokenType == "DPoP")
            for issued in [shortest, longest, defaults, bound] {
                #expect(try await h.store.token(hash: issued.access.hash) == issued.access)
                if let refresh = issued.refresh { #expect(try await h.store.token(hash: refresh.hash) == refresh) }
                #expect(issued.access.hash == TokenHash(token: issued.accessToken))
            }
        }
    }
}
