import Foundation
import PostgresNIO
import SQLiteNIO
import Testing
import TokendCore
import TokendTestSupport

@testable import TokendPostgres
@testable import TokendSQLite

/// The `TokendStore` contract. Every test runs the same code against PostgreSQL and SQLite.
@Suite struct StoreConformanceTests {
    // MARK: Clients

    @Test(arguments: StoreKind.conformanceCases)
    func createAndGetClientRoundTripsEveryField(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let client = makeClient("rs-1", roles: [.introspect, .revoke], audiences: ["api://orders", "api://billing"])
            try await store.createClient(client)
            let read = try await store.client(id: "rs-1")
            #expect(read == client)
            #expect(read?.audiences == ["api://orders", "api://billing"])

            let bare = makeClient("bare", roles: [], audiences: [])
            try await store.createClient(bare)
            #expect(try await store.client(id: "bare") == bare)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func duplicateClientIsAlreadyExistsAndKeepsTheOriginal(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let original = makeClient("dup", roles: [.issue])
            try await store.createClient(original)
            await expectError(.alreadyExists) { try await store.createClient(makeClient("dup", roles: [.revoke])) }
            #expect(try await store.client(id: "dup") == original)
            #expect(try await store.listClients().count == 1)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func unknownClientIsNil(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.client(id: "nobody") == nil)
            try await store.createClient(makeClient("somebody"))
            #expect(try await store.client(id: "nobody") == nil)
            #expect(try await store.client(id: "SOMEBODY") == nil)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func listClientsIsSortedByID(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.listClients().isEmpty)
            let ids = ["charlie", "alpha", "delta", "bravo"]
            var records: [String: ClientRecord] = [:]
            for id in ids {
                let record = makeClient(id, roles: [.introspect])
                records[id] = record
                try await store.createClient(record)
            }
            let listed = try await store.listClients()
            #expect(listed.map(\.id) == ["alpha", "bravo", "charlie", "delta"])
            for record in listed { #expect(record == records[record.id]) }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func deleteClientReportsWhetherItExistedAndKeepsItsTokens(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.createClient(makeClient("gone"))
            try await store.createClient(makeClient("stays"))
            let token = mint(client: "gone")
            try await store.insertTokens([token.record])

            #expect(try await store.deleteClient(id: "gone") == true)
            #expect(try await store.client(id: "gone") == nil)
            #expect(try await store.deleteClient(id: "gone") == false)
            #expect(try await store.deleteClient(id: "never") == false)
            #expect(try await store.listClients().map(\.id) == ["stays"])
            // "its tokens stay as they are"
            #expect(try await store.token(hash: token.hash) == token.record)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func updateClientSecretReplacesOnlyTheSecret(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let client = makeClient("rotating", roles: [.issue, .introspect], audiences: ["aud"])
            try await store.createClient(client)
            let fresh = ClientSecret.hash("new secret")
            #expect(try await store.updateClientSecret(id: "rotating", salt: fresh.salt, hash: fresh.hash) == true)
            var expected = client
            expected.secretSalt = fresh.salt
            expected.secretHash = fresh.hash
            #expect(try await store.client(id: "rotating") == expected)
            #expect(try await store.updateClientSecret(id: "nobody", salt: fresh.salt, hash: fresh.hash) == false)
            #expect(try await store.client(id: "nobody") == nil)
        }
    }

    // MARK: Tokens

    @Test(arguments: StoreKind.conformanceCases)
    func tokensReadBackByHashAndJTIWithEveryField(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = Randomness.identifier()
            let access = mint(
                .access,
                client: "web",
                subject: "user-42",
                username: "Zoë \"the\" admin",
                scope: "read write:orders",
                audiences: ["api://b", "api://a", "api://c"],
                notBefore: t0.addingTimeInterval(30),
                ttl: 900,
                grant: grant,
                confirmation: Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
                extra: ["tenant": "acme", "note": "ünïcode, \"quotes\" and \\ backslash", "empty": ""]
            )
            let refresh = mint(
                .refresh,
                client: "web",
                subject: "user-42",
                ttl: 30 * 86400,
                grant: grant,
                confirmation: Confirmation(x5tS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
            )
            try await store.insertTokens([access.record, refresh.record])

            for minted in [access, refresh] {
                #expect(try await store.token(hash: minted.hash) == minted.record)
                #expect(try await store.token(jti: minted.record.jti) == minted.record)
            }
            let read = try #require(try await store.token(hash: access.hash))
            #expect(read.audiences == ["api://b", "api://a", "api://c"])
            #expect(read.extra["note"] == "ünïcode, \"quotes\" and \\ backslash")
            #expect(read.confirmation == Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", x5tS256: nil))
            #expect(read.notBefore == t0.addingTimeInterval(30))
            #expect(read.expiresAt == t0.addingTimeInterval(900))
            #expect(read.revokedAt == nil)
            let readRefresh = try #require(try await store.token(jti: refresh.record.jti))
            #expect(readRefresh.kind == .refresh)
            #expect(readRefresh.grantID == grant)
            #expect(readRefresh.confirmation == Confirmation(jkt: nil, x5tS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func optionalFieldsReadBackAsNil(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let bare = mint(.access, client: "m2m", subject: nil)
            #expect(bare.record.subject == nil && bare.record.username == nil && bare.record.scope == nil)
            #expect(bare.record.notBefore == nil && bare.record.confirmation == nil && bare.record.extra.isEmpty)
            try await store.insertTokens([bare.record])
            let read = try #require(try await store.token(hash: bare.hash))
            #expect(read == bare.record)
            #expect(read.subject == nil)
            #expect(read.username == nil)
            #expect(read.scope == nil)
            #expect(read.notBefore == nil)
            #expect(read.confirmation == nil)
            #expect(read.audiences.isEmpty)
            #expect(read.extra.isEmpty)
            #expect(read.revokedAt == nil)

            let both = mint(confirmation: Confirmation(jkt: "j", x5tS256: "x"))
            try await store.insertTokens([both.record])
            #expect(try await store.token(jti: both.record.jti)?.confirmation == Confirmation(jkt: "j", x5tS256: "x"))
        }
    }

    /// The batched read (the HTTP fast path's misses): every known hash asked for, once, each
    /// with the record `token(hash:)` reads; unknown hashes absent; more than one query's worth.
    @Test(arguments: StoreKind.conformanceCases)
    func tokensByHashesReadsTheKnownOnesOfABatch(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.tokens(hashes: []).isEmpty)
            let grant = Randomness.identifier()
            let minted = (0..<300).map { i in mint(i % 3 == 0 ? .refresh : .access, scope: "s\(i)", audiences: ["a\(i)"], grant: grant) }
            try await store.insertTokens(minted.map(\.record))
            let asked = minted.prefix(280).map(\.record.hash)
            let unknown = (0..<5).map { TokenHash(token: "tkd_at_unknown\($0)") }
            let records = try await store.tokens(hashes: asked + unknown + asked.prefix(3))
            #expect(records.count == 280)
            for hash in asked.prefix(20) + asked.suffix(20) {
                #expect(records[hash] == (try await store.token(hash: hash)))
            }
            #expect(unknown.allSatisfy { records[$0] == nil })
            #expect(records[minted[299].record.hash] == nil, "not asked for")
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func unknownTokensAreNil(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.token(hash: TokenHash(token: "tkd_at_unknown")) == nil)
            #expect(try await store.token(jti: "unknown") == nil)
            let known = mint()
            try await store.insertTokens([known.record])
            #expect(try await store.token(hash: TokenHash(token: known.token + "x")) == nil)
            #expect(try await store.token(jti: known.record.jti.lowercased() + "-") == nil)
            #expect(try await store.token(jti: "") == nil)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func insertTokensIsAtomic(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let first = mint()
            try await store.insertTokens([first.record])
            // The second record reuses a jti (UNIQUE): the whole batch must be rejected.
            let fresh = mint(grant: Randomness.identifier())
            var clash = mint(grant: fresh.record.grantID)
            clash.record.jti = first.record.jti
            await #expect(throws: (any Error).self) { try await store.insertTokens([fresh.record, clash.record]) }
            #expect(try await store.token(hash: fresh.hash) == nil)
            #expect(try await store.token(hash: clash.hash) == nil)
            #expect(try await store.token(hash: first.hash) == first.record)
        }
    }

    // MARK: Revocation

    @Test(arguments: StoreKind.conformanceCases)
    func revokingAnAccessTokenRevokesOnlyThatToken(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant()
            try await insert(grant, into: store)
            let at = t0.addingTimeInterval(60)
            let outcome = try await store.revoke(.token(grant.access.hash), reason: "leaked", at: at)
            #expect(outcome.revoked == 1)
            #expect(outcome.seq > 0)
            #expect(try await store.revocationHead() == outcome.seq)

            #expect(try await revokedAt(grant.access, in: store) == at)
            #expect(try await revokedAt(grant.access2, in: store) == nil)
            #expect(try await revokedAt(grant.refresh, in: store) == nil)

            let entries = try await log(store)
            #expect(entries.count == 1)
            let entry = try #require(entries.first)
            #expect(entry.seq == outcome.seq)
            #expect(entry.kind == .token)
            #expect(entry.value == grant.access.record.jti)
            #expect(entry.tokenHashes == [grant.access.hash])
            #expect(entry.reason == "leaked")
            #expect(entry.revokedCount == 1)
            #expect(entry.createdAt == at)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingARefreshTokenRevokesItsGrant(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant()
            let sibling = makeGrant()  // same client and subject, another grant
            try await insert(grant, into: store)
            try await insert(sibling, into: store)
            let at = t0.addingTimeInterval(120)
            let outcome = try await store.revoke(.token(grant.refresh.hash), reason: "logout", at: at)
            #expect(outcome.revoked == 3)
            #expect(outcome.seq > 0)
            for minted in grant.all { #expect(try await revokedAt(minted, in: store) == at) }
            for minted in sibling.all { #expect(try await revokedAt(minted, in: store) == nil) }

            let entry = try #require(try await log(store).last)
            #expect(entry.seq == outcome.seq)
            #expect(entry.kind == .grant)
            #expect(entry.value == grant.id)
            #expect(Set(entry.tokenHashes) == Set(grant.all.map(\.hash)))
            #expect(entry.tokenHashes.count == 3)
            #expect(entry.revokedCount == 3)
            #expect(entry.reason == "logout")
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingARefreshTokenCountsOnlyTokensNotYetRevoked(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant()
            try await insert(grant, into: store)
            let first = try await store.revoke(.token(grant.access.hash), reason: "", at: t0.addingTimeInterval(1))
            let second = try await store.revoke(.token(grant.refresh.hash), reason: "", at: t0.addingTimeInterval(2))
            #expect(first.revoked == 1)
            #expect(second.revoked == 2)
            #expect(second.seq > first.seq)
            // The earlier revocation time is kept.
            #expect(try await revokedAt(grant.access, in: store) == t0.addingTimeInterval(1))
            #expect(try await revokedAt(grant.access2, in: store) == t0.addingTimeInterval(2))
            #expect(try await revokedAt(grant.refresh, in: store) == t0.addingTimeInterval(2))
            let entry = try #require(try await log(store).last)
            #expect(Set(entry.tokenHashes) == [grant.access2.hash, grant.refresh.hash])
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingByJTI(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant()
            let other = makeGrant()
            try await insert(grant, into: store)
            try await insert(other, into: store)

            let at = t0.addingTimeInterval(5)
            let access = try await store.revoke(.jti(grant.access.record.jti), reason: "by jti", at: at)
            #expect(access.revoked == 1)
            #expect(try await revokedAt(grant.access, in: store) == at)
            #expect(try await revokedAt(grant.access2, in: store) == nil)
            #expect(try await revokedAt(grant.refresh, in: store) == nil)
            var entry = try #require(try await log(store).last)
            #expect(entry.kind == .jti)
            #expect(entry.value == grant.access.record.jti)
            #expect(entry.tokenHashes == [grant.access.hash])

            // A refresh token's jti cascades to its grant, like the token itself.
            let refresh = try await store.revoke(.jti(other.refresh.record.jti), reason: "by jti", at: at)
            #expect(refresh.revoked == 3)
            for minted in other.all { #expect(try await revokedAt(minted, in: store) == at) }
            entry = try #require(try await log(store).last)
            #expect(entry.kind == .grant)
            #expect(entry.value == other.id)
            #expect(try await revokedAt(grant.access2, in: store) == nil)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingBySubjectCoversOnlyTokensIssuedSoFar(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let web = makeGrant(client: "web", subject: "alice")
            let mobile = makeGrant(client: "mobile", subject: "alice")
            let bob = makeGrant(client: "web", subject: "bob")
            let machine = mint(client: "web", subject: nil)
            for grant in [web, mobile, bob] { try await insert(grant, into: store) }
            try await store.insertTokens([machine.record])

            let at = t0.addingTimeInterval(300)
            let outcome = try await store.revoke(.subject("alice"), reason: "account locked", at: at)
            #expect(outcome.revoked == 6)
            for minted in web.all + mobile.all { #expect(try await revokedAt(minted, in: store) == at) }
            for minted in bob.all + [machine] { #expect(try await revokedAt(minted, in: store) == nil) }
            let entry = try #require(try await log(store).last)
            #expect(entry.seq == outcome.seq)
            #expect(entry.kind == .subject)
            #expect(entry.value == "alice")
            #expect(entry.revokedCount == 6)
            #expect(entry.reason == "account locked")

            // Issued after the revocation: stays valid.
            let later = makeGrant(client: "web", subject: "alice", issuedAt: at.addingTimeInterval(1))
            try await insert(later, into: store)
            for minted in later.all { #expect(try await revokedAt(minted, in: store) == nil) }
            #expect(try await store.revocationHead() == outcome.seq)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingByClientCoversOnlyTokensIssuedSoFar(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let a1 = makeGrant(client: "compromised", subject: "alice")
            let a2 = makeGrant(client: "compromised", subject: "bob")
            let b = makeGrant(client: "fine", subject: "alice")
            for grant in [a1, a2, b] { try await insert(grant, into: store) }

            let at = t0.addingTimeInterval(10)
            let outcome = try await store.revoke(.client("compromised"), reason: "key leak", at: at)
            #expect(outcome.revoked == 6)
            for minted in a1.all + a2.all { #expect(try await revokedAt(minted, in: store) == at) }
            for minted in b.all { #expect(try await revokedAt(minted, in: store) == nil) }
            let entry = try #require(try await log(store).last)
            #expect(entry.kind == .client)
            #expect(entry.value == "compromised")
            #expect(entry.revokedCount == 6)

            let later = makeGrant(client: "compromised", subject: "alice", issuedAt: at.addingTimeInterval(1))
            try await insert(later, into: store)
            for minted in later.all { #expect(try await revokedAt(minted, in: store) == nil) }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingByGrant(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let target = makeGrant()
            let other = makeGrant()
            try await insert(target, into: store)
            try await insert(other, into: store)
            let at = t0.addingTimeInterval(7)
            let outcome = try await store.revoke(.grant(target.id), reason: "consent withdrawn", at: at)
            #expect(outcome.revoked == 3)
            for minted in target.all { #expect(try await revokedAt(minted, in: store) == at) }
            for minted in other.all { #expect(try await revokedAt(minted, in: store) == nil) }
            let entry = try #require(try await log(store).last)
            #expect(entry.kind == .grant)
            #expect(entry.value == target.id)
            #expect(Set(entry.tokenHashes) == Set(target.all.map(\.hash)))

            let later = makeGrant(issuedAt: at.addingTimeInterval(1))
            try await insert(later, into: store)
            for minted in later.all { #expect(try await revokedAt(minted, in: store) == nil) }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func revokingAnAlreadyRevokedOrUnknownTokenDoesNothing(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant()
            try await insert(grant, into: store)
            let first = try await store.revoke(.token(grant.access.hash), reason: "", at: t0.addingTimeInterval(1))
            #expect(first.revoked == 1)
            let grantOutcome = try await store.revoke(.token(grant.refresh.hash), reason: "", at: t0.addingTimeInterval(2))
            #expect(grantOutcome.revoked == 2)
            let head = try await store.revocationHead()
            #expect(head == grantOutcome.seq)

            let none = RevocationOutcome(revoked: 0, seq: 0)
            let later = t0.addingTimeInterval(3)
            #expect(try await store.revoke(.token(grant.access.hash), reason: "", at: later) == none)
            #expect(try await store.revoke(.token(grant.refresh.hash), reason: "", at: later) == none)
            #expect(try await store.revoke(.jti(grant.access2.record.jti), reason: "", at: later) == none)
            #expect(try await store.revoke(.jti(grant.refresh.record.jti), reason: "", at: later) == none)
            #expect(try await store.revoke(.token(TokenHash(token: OpaqueToken.generate(.access))), reason: "", at: later) == none)
            #expect(try await store.revoke(.token(TokenHash(token: OpaqueToken.generate(.refresh))), reason: "", at: later) == none)
            #expect(try await store.revoke(.jti("no-such-jti"), reason: "", at: later) == none)

            #expect(try await store.revocationHead() == head)
            #expect(try await log(store).count == 2)
            // The first revocation time stays.
            #expect(try await revokedAt(grant.access, in: store) == t0.addingTimeInterval(1))
            #expect(try await revokedAt(grant.refresh, in: store) == t0.addingTimeInterval(2))
        }
    }

    // MARK: Revocation primitives

    @Test(arguments: StoreKind.conformanceCases)
    func markRevokedReturnsExactlyTheTokensItNewlyRevokedForEachMatch(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant(client: "web", subject: "alice")
            let bob = makeGrant(client: "web", subject: "bob")
            let mobile = makeGrant(client: "mobile", subject: "carol")
            for g in [grant, bob, mobile] { try await insert(g, into: store) }
            let at = t0.addingTimeInterval(30)
            func revoked(_ minted: [Minted]) -> Set<RevokedToken> {
                Set(minted.map { RevokedToken(hash: $0.hash, expiresAt: $0.record.expiresAt) })
            }
            let (restOfGrant, bobs, mobiles) = (revoked([grant.access2, grant.refresh]), revoked(bob.all), revoked(mobile.all))

            try await store.withRevocationTransaction { tx async throws -> Void in
                #expect(
                    try await tx.markRevoked(.hash(grant.access.hash), at: at) == [
                        RevokedToken(hash: grant.access.hash, expiresAt: grant.access.record.expiresAt)
                    ]
                )
                #expect(try await tx.markRevoked(.hash(grant.access.hash), at: at).isEmpty)
                // The grant's other tokens only: the access token is revoked already.
                #expect(Set(try await tx.markRevoked(.grant(grant.id), at: at)) == restOfGrant)
                #expect(try await tx.markRevoked(.grant(grant.id), at: at).isEmpty)
                #expect(Set(try await tx.markRevoked(.subject("bob"), at: at)) == bobs)
                #expect(try await tx.markRevoked(.subject("bob"), at: at).isEmpty)
                #expect(Set(try await tx.markRevoked(.client("mobile"), at: at)) == mobiles)
                #expect(try await tx.markRevoked(.client("mobile"), at: at).isEmpty)
                #expect(try await tx.markRevoked(.hash(TokenHash(token: OpaqueToken.generate(.access))), at: at).isEmpty)
                #expect(try await tx.markRevoked(.grant("no-such-grant"), at: at).isEmpty)
                #expect(try await tx.markRevoked(.subject("nobody"), at: at).isEmpty)
                #expect(try await tx.markRevoked(.client("nobody"), at: at).isEmpty)
            }
            for minted in grant.all + bob.all + mobile.all { #expect(try await revokedAt(minted, in: store) == at) }
            // Marking logs nothing: the log is written only by `append`.
            #expect(try await log(store).isEmpty)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func transactionLookupsReadRecordsRevokedOrNot(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grant = makeGrant()
            try await insert(grant, into: store)
            _ = try await store.revoke(.token(grant.access.hash), reason: "", at: t0)
            let revokedAccess = {
                var record = grant.access.record
                record.revokedAt = t0
                return record
            }()
            try await store.withRevocationTransaction { tx async throws -> Void in
                #expect(try await tx.token(hash: grant.access.hash) == revokedAccess)
                #expect(try await tx.token(jti: grant.access.record.jti) == revokedAccess)
                #expect(try await tx.token(hash: grant.refresh.hash) == grant.refresh.record)
                #expect(try await tx.token(jti: grant.refresh.record.jti) == grant.refresh.record)
                #expect(try await tx.token(hash: TokenHash(token: OpaqueToken.generate(.access))) == nil)
                #expect(try await tx.token(jti: "no-such-jti") == nil)
            }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func appendReturnsIncreasingSeqsThatTheLogReadsBackAfterASequence(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let hashes = [TokenHash(token: "tkd_at_a"), TokenHash(token: "tkd_at_b")]
            let entries = [
                NewRevocationEntry(
                    kind: .grant,
                    value: "g-1",
                    tokenHashes: hashes,
                    reason: "logout",
                    revokedCount: 2,
                    createdAt: t0,
                    expiresAt: t0.addingTimeInterval(3600)
                ),
                NewRevocationEntry(
                    kind: .subject,
                    value: "alice",
                    tokenHashes: [],
                    reason: "",
                    revokedCount: 5,
                    createdAt: t0.addingTimeInterval(1),
                    expiresAt: t0.addingTimeInterval(86400)
                ),
                NewRevocationEntry(
                    kind: .jti,
                    value: "j-1",
                    tokenHashes: [hashes[0]],
                    reason: "r",
                    revokedCount: 1,
                    createdAt: t0.addingTimeInterval(2),
                    expiresAt: t0.addingTimeInterval(2)
                ),
            ]
            let first = try await store.withRevocationTransaction { tx in
                [try await tx.append(entries[0]), try await tx.append(entries[1])]
            }
            let last = try await store.withRevocationTransaction { tx in try await tx.append(entries[2]) }
            let seqs = first + [last]
            #expect(seqs[0] > 0)
            #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "seq increases: \(seqs)")
            #expect(try await store.revocationHead() == last)

            let read = try await log(store)
            #expect(read.map(\.seq) == seqs)
            for (entry, new) in zip(read, entries) {
                #expect(
                    entry
                        == RevocationEntry(
                            seq: entry.seq,
                            kind: new.kind,
                            value: new.value,
                            tokenHashes: new.tokenHashes,
                            reason: new.reason,
                            revokedCount: new.revokedCount,
                            createdAt: new.createdAt,
                            expiresAt: new.expiresAt
                        )
                )
            }
            #expect(try await store.revocations(after: seqs[0], limit: 10).map(\.seq) == Array(seqs.dropFirst()))
            #expect(try await store.revocations(after: seqs[1], limit: 10).map(\.value) == ["j-1"])
            #expect(try await store.revocations(after: last, limit: 10).isEmpty)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func aTransactionThatThrowsLeavesNothingMarkedAndNothingLogged(kind: StoreKind) async throws {
        struct Abandon: Error {}
        try await withStore(kind) { store in
            let grant = makeGrant()
            try await insert(grant, into: store)
            await #expect(throws: Abandon.self) {
                try await store.withRevocationTransaction { tx in
                    #expect(try await tx.markRevoked(.grant(grant.id), at: t0).count == 3)
                    let seq = try await tx.append(
                        NewRevocationEntry(
                            kind: .grant,
                            value: grant.id,
                            tokenHashes: grant.all.map(\.hash),
                            reason: "",
                            revokedCount: 3,
                            createdAt: t0,
                            expiresAt: t0
                        )
                    )
                    #expect(seq > 0)
                    throw Abandon()
                }
            }
            for minted in grant.all { #expect(try await revokedAt(minted, in: store) == nil) }
            #expect(try await log(store).isEmpty)
            #expect(try await store.revocationHead() == 0)
            // The store is usable afterwards, and the grant revocable.
            #expect(try await store.revoke(.grant(grant.id), reason: "", at: t0).revoked == 3)
        }
    }

    // MARK: Rows decode or fail

    @Test(arguments: StoreKind.conformanceCases)
    func aTokenOfAnUnknownKindIsStoreCorruption(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let token = mint()
            try await store.insertTokens([token.record])
            try await overwrite(store, "tokens", set: "kind = 7", where: "jti", is: token.record.jti)
            await expectCorruption("tokens", "kind") { try await store.token(hash: token.hash) }
            await expectCorruption("tokens", "kind") { try await store.token(jti: token.record.jti) }
            // Callers answer 503, never a guess.
            let introspector = Introspector(store: store, logger: TestEnvironment.logger)
            await expectError(.unavailable) { try await introspector.introspect(token: token.token, audiences: []) }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func extraClaimsThatAreNotAnObjectOfStringsAreStoreCorruption(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let numbers = mint()
            let array = mint()
            try await store.insertTokens([numbers.record])
            try await store.insertTokens([array.record])
            try await overwrite(store, "tokens", set: #"extra = '{"n": 1}'"#, where: "jti", is: numbers.record.jti)
            try await overwrite(store, "tokens", set: "extra = '[]'", where: "jti", is: array.record.jti)
            for minted in [numbers, array] {
                await expectCorruption("tokens", "extra") { try await store.token(hash: minted.hash) }
            }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func aClientWithAnUnknownRoleIsStoreCorruption(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.createClient(makeClient("odd", roles: [.introspect]))
            try await overwrite(
                store,
                "clients",
                set: #"roles = '["introspect","superuser"]'"#,
                postgres: "roles = ARRAY['introspect','superuser']",
                where: "client_id",
                is: "odd"
            )
            await expectCorruption("clients", "roles") { try await store.client(id: "odd") }
            await expectCorruption("clients", "roles") { try await store.listClients() }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func aLogEntryOfAnUnknownKindIsStoreCorruption(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.revoke(.subject("alice"), reason: "", at: t0)
            try await overwrite(store, "revocations", set: "kind = 'everything'", where: "value", is: "alice")
            await expectCorruption("revocations", "kind") { try await log(store) }
        }
    }

    // MARK: Revocation log

    @Test(arguments: StoreKind.conformanceCases)
    func emptyLog(kind: StoreKind) async throws {
        try await withStore(kind) { store async throws in
            #expect(try await store.revocationHead() == 0)
            #expect(try await log(store).isEmpty)
            #expect(try await store.revocations(after: 5, limit: 10).isEmpty)
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func logIsOrderedAndHonoursAfterAndLimit(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            var outcomes: [RevocationOutcome] = []
            var expectedKinds: [RevocationEntry.Kind] = []
            for i in 0..<5 {
                let token = mint(subject: "user-\(i)")
                try await store.insertTokens([token.record])
                if i.isMultiple(of: 2) {
                    outcomes.append(try await store.revoke(.token(token.hash), reason: "r\(i)", at: t0.addingTimeInterval(Double(i))))
                    expectedKinds.append(.token)
                } else {
                    outcomes.append(try await store.revoke(.subject("user-\(i)"), reason: "r\(i)", at: t0.addingTimeInterval(Double(i))))
                    expectedKinds.append(.subject)
                }
            }
            let seqs = outcomes.map(\.seq)
            #expect(outcomes.allSatisfy { $0.revoked == 1 })
            #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "seq increases: \(seqs)")

            let all = try await log(store)
            #expect(all.map(\.seq) == seqs)
            #expect(all.map(\.kind) == expectedKinds)
            #expect(all.map(\.reason) == ["r0", "r1", "r2", "r3", "r4"])
            #expect(all.map(\.createdAt) == (0..<5).map { t0.addingTimeInterval(Double($0)) })
            #expect(try await store.revocationHead() == seqs.last)

            #expect(try await store.revocations(after: 0, limit: 2).map(\.seq) == Array(seqs.prefix(2)))
            #expect(try await store.revocations(after: seqs[1], limit: 100).map(\.seq) == Array(seqs.dropFirst(2)))
            #expect(try await store.revocations(after: seqs[1], limit: 2).map(\.seq) == [seqs[2], seqs[3]])
            #expect(try await store.revocations(after: seqs[4], limit: 100).isEmpty)
            #expect(try await store.revocations(after: seqs[3], limit: 1).map(\.seq) == [seqs[4]])
        }
    }

    // MARK: Expiry

    @Test(arguments: StoreKind.conformanceCases)
    func deleteExpiredDeletesOnlyExpiredTokens(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let cutoff = t0.addingTimeInterval(3600)
            // Access token expired, refresh token of the same grant still live.
            let mixedID = Randomness.identifier()
            let mixedAccess = mint(.access, ttl: 600, grant: mixedID)
            let mixedRefresh = mint(.refresh, ttl: 86400, grant: mixedID)
            // Everything expired.
            let deadID = Randomness.identifier()
            let deadAccess = mint(.access, ttl: 60, grant: deadID)
            let deadRefresh = mint(.refresh, ttl: 120, grant: deadID)
            // Expires exactly at the cutoff: not "before" it.
            let boundary = mint(.access, ttl: 3600)
            let live = mint(.access, ttl: 7200)
            try await store.insertTokens([mixedAccess.record, mixedRefresh.record])
            try await store.insertTokens([deadAccess.record, deadRefresh.record])
            try await store.insertTokens([boundary.record])
            try await store.insertTokens([live.record])
            // A revocation of a live token: its log entry must survive the clean-up.
            let kept = try await store.revoke(.token(live.hash), reason: "", at: t0)
            #expect(kept.revoked == 1)

            #expect(try await store.deleteExpired(before: cutoff) == 3)
            for gone in [mixedAccess, deadAccess, deadRefresh] {
                #expect(try await store.token(hash: gone.hash) == nil)
                #expect(try await store.token(jti: gone.record.jti) == nil)
            }
            #expect(try await store.token(hash: mixedRefresh.hash) == mixedRefresh.record)
            #expect(try await store.token(hash: boundary.hash) == boundary.record)
            #expect(try await store.token(hash: live.hash)?.revokedAt == t0)
            #expect(try await log(store).map(\.seq) == [kept.seq])

            // Nothing left to delete at the same cutoff; the mixed grant can still take a token.
            #expect(try await store.deleteExpired(before: cutoff) == 0)
            let more = mint(.access, issuedAt: cutoff, grant: mixedID)
            try await store.insertTokens([more.record])
            #expect(try await store.token(hash: more.hash) == more.record)
            // Revoking the mixed grant's refresh token still reaches the grant's remaining tokens.
            #expect(try await store.revoke(.token(mixedRefresh.hash), reason: "", at: cutoff).revoked == 2)

            let head = try await store.revocationHead()
            #expect(try await store.deleteExpired(before: t0.addingTimeInterval(10 * 86400)) == 4)
            #expect(try await store.token(hash: live.hash) == nil)
            // No entry covers a live token any more; only the newest stays, so the head holds.
            #expect(try await log(store).map(\.seq) == [head])
            #expect(try await store.revocationHead() == head)
            let next = try await store.revoke(.subject("nobody"), reason: "", at: t0.addingTimeInterval(10 * 86400))
            #expect(next.seq > head)
        }
    }

    /// `tokend gc` (`deleteExpired`) on a log whose live and expired entries interleave: it
    /// deletes exactly the expired tokens and the entries that no longer cover a live token, keeps
    /// every entry that still does (wherever it stands in the log), one expiring at the cutoff and
    /// the newest, and never touches clients, audit events or signing keys.
    @Test(arguments: StoreKind.conformanceCases)
    func gcDeletesWhatHasExpiredAndKeepsEveryEntryThatStillCovers(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let clock = ManualClock(t0)
            let admin = AuditConformanceTests.Admin(store, clock: clock)
            _ = try await admin.registry.create(id: "app", roles: ["issue"], audiences: [], audit: AuditConformanceTests.operatorContext)
            let key = StoredSigningKey(kid: "k1", algorithm: "ES256", privateKey: [1, 2, 3], createdAt: t0, retiresAt: nil)
            #expect(try await store.insertFirstSigningKey(key))
            let audit = try await AuditConformanceTests.all(store)

            let cutoff = t0.addingTimeInterval(3600)
            let liveToken = mint(ttl: 7200)
            let expiredToken = mint(ttl: 600)
            let ruled = mint(subject: "carol", ttl: 86400)
            let expiredByJTI = mint(ttl: 60)
            let atCutoff = mint(ttl: 3600)
            let unrevoked = (live: mint(ttl: 5400), expired: mint(ttl: 1800))
            for minted in [liveToken, expiredToken, ruled, expiredByJTI, atCutoff, unrevoked.live, unrevoked.expired] {
                try await store.insertTokens([minted.record])
            }
            let at = t0.addingTimeInterval(1)
            let seqs = [
                try await store.revoke(.token(liveToken.hash), reason: "", at: at).seq,  // covers a live token
                try await store.revoke(.token(expiredToken.hash), reason: "", at: at).seq,
                try await store.revoke(.subject("carol"), reason: "", at: at).seq,  // a rule over a live token
                try await store.revoke(.jti(expiredByJTI.record.jti), reason: "", at: at).seq,
                try await store.revoke(.token(atCutoff.hash), reason: "", at: at).seq,  // expires at the cutoff, not before
                try await store.revoke(.subject("nobody"), reason: "", at: at).seq,  // the newest: covers nothing, stays as the head
            ]
            #expect(seqs.allSatisfy { $0 > 0 } && seqs == seqs.sorted())

            #expect(try await store.deleteExpired(before: cutoff) == 3)
            for gone in [expiredToken, expiredByJTI, unrevoked.expired] {
                #expect(try await store.token(hash: gone.hash) == nil, "an expired token was kept")
            }
            for kept in [liveToken, ruled, atCutoff] {
                #expect(try await store.token(hash: kept.hash)?.revokedAt == at, "a live revoked token was deleted")
            }
            #expect(try await store.token(hash: unrevoked.live.hash) == unrevoked.live.record)
            #expect(try await log(store).map(\.seq) == [seqs[0], seqs[2], seqs[4], seqs[5]])
            #expect(try await store.revocationHead() == seqs[5])
            #expect(try await store.client(id: "app") != nil)
            #expect(try await AuditConformanceTests.all(store) == audit)
            #expect(try await store.signingKeys() == [key])

            // Once everything has expired: no token is left, the log keeps only its head, and
            // clients, audit events and keys are still there.
            #expect(try await store.deleteExpired(before: t0.addingTimeInterval(2 * 86400)) == 4)
            for minted in [liveToken, ruled, atCutoff, unrevoked.live] { #expect(try await store.token(hash: minted.hash) == nil) }
            #expect(try await log(store).map(\.seq) == [seqs[5]])
            #expect(try await store.client(id: "app") != nil)
            #expect(try await AuditConformanceTests.all(store) == audit)
            #expect(try await store.signingKeys() == [key])
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func ping(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.ping()
            #expect(store.name == kind.storeName)
        }
    }
}

/// Sets `assignment` (SQL) on the rows of `table` whose `column` is `value`, past the store: for
/// values tokend never writes. `postgres` replaces `assignment` where the dialects differ.
func overwrite(
    _ store: any TokendStore,
    _ table: String,
    set assignment: String,
    postgres: String? = nil,
    where column: String,
    is value: String
) async throws {
    switch store {
    case let store as PostgresStore:
        // Test-only SQL from literals in this file; the value is bound.
        try await store.client.query(
            "UPDATE \(unescaped: table) SET \(unescaped: postgres ?? assignment) WHERE \(unescaped: column) = \(value)",
            logger: TestEnvironment.logger
        )
    case let store as SQLiteStore:
        try await store.execute("UPDATE \(table) SET \(assignment) WHERE \(column) = ?", [.text(value)])
    default:
        Issue.record("no raw SQL for \(type(of: store))")
    }
}

/// Expects `body` to throw `StoreCorruption` naming `table`.`column`, and its description not to
/// carry any value.
func expectCorruption<R>(
    _ table: String,
    _ column: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async {
    do {
        let value = try await body()
        Issue.record("expected StoreCorruption(\(table).\(column)), got the value \(value)", sourceLocation: sourceLocation)
    } catch let error as StoreCorruption {
        #expect(error == StoreCorruption(table: table, column: column), sourceLocation: sourceLocation)
        #expect(error.description == "unreadable value in \(table).\(column)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected StoreCorruption(\(table).\(column)), got \(String(reflecting: error))", sourceLocation: sourceLocation)
    }
}
