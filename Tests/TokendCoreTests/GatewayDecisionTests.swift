import Foundation
import Testing
import TokendTestSupport

@testable import TokendCore

private let now = Date(timeIntervalSince1970: 1_800_000_000)

/// Answers lookups from a dictionary; everything else is out of scope here. Kept as a double: the
/// decisions must hold for record shapes a store does not hand back (an empty `cnf`, which the
/// stores read back as none), and these cases check the decision alone, record for record.
private struct RecordsStore: TokenStore {
    let records: [TokenHash: TokenRecord]
    struct Unused: Error {}

    func token(hash: TokenHash) async throws -> TokenRecord? { records[hash] }
    func insertTokens(_ tokens: [TokenRecord], audit: AuditEvent?) async throws { throw Unused() }
    func token(jti: String) async throws -> TokenRecord? { throw Unused() }
    func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T {
        throw Unused()
    }
    func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry] { throw Unused() }
    func revocationHead() async throws -> Int64 { throw Unused() }
    func deleteExpired(before cutoff: Date) async throws -> Int { throw Unused() }
}

/// A token and its record; `adjust` changes the record before it is stored.
private func minted(_ kind: TokenKind = .access, _ adjust: (inout TokenRecord) -> Void = { _ in }) -> (String, TokenRecord) {
    let token = OpaqueToken.generate(kind)
    var record = TokenRecord(
        hash: TokenHash(token: token),
        kind: kind,
        clientID: "app",
        subject: "alice",
        username: nil,
        scope: "read write",
        audiences: ["api", "kube"],
        issuer: "https://tokend.test",
        issuedAt: now.addingTimeInterval(-60),
        notBefore: nil,
        expiresAt: now.addingTimeInterval(3600),
        jti: "jti-\(token.suffix(6))",
        grantID: "grant-1",
        confirmation: nil,
        extra: [:]
    )
    adjust(&record)
    return (token, record)
}

private func introspector(_ records: [(String, TokenRecord)]) -> Introspector {
    let store = RecordsStore(records: Dictionary(uniqueKeysWithValues: records.map { ($0.1.hash, $0.1) }))
    return Introspector(store: store, now: { now }, logger: TestEnvironment.logger)
}

private func client(_ roles: Set<Role> = [.introspect], audiences: [String] = []) -> ClientRecord {
    ClientRecord(id: "gateway", roles: roles, audiences: audiences, secretSalt: [], secretHash: [], createdAt: now)
}

@Suite struct GatewayDecisionTests {
    @Test func requirementsFromAQueryTreatEmptyAsAbsent() {
        #expect(GatewayRequirements(audience: "", scope: "") == GatewayRequirements())
        #expect(GatewayRequirements(audience: nil, scope: nil) == GatewayRequirements())
        #expect(GatewayRequirements(audience: "api", scope: "a b") == GatewayRequirements(audience: "api", scopes: ["a", "b"]))
    }

    @Test func theGatewayNeedsTheIntrospectRoleBeforeAnythingElse() async throws {
        let decisions = introspector([])
        for bearer in [BearerPresentation.absent, .token(""), .token("x")] {
            await #expect(throws: TokendError.missingRole("this client may not introspect tokens")) {
                try await decisions.authorize(bearer, caller: client([.issue, .revoke]), requirements: GatewayRequirements())
            }
        }
        await #expect(throws: TokendError.self) { try await decisions.review("x", caller: client([.issue]), audiences: []) }
    }

    @Test func onlyAPlainBearerAccessTokenIsAllowed() async throws {
        let access = minted()
        let refresh = minted(.refresh)
        let dpop = minted { $0.confirmation = Confirmation(jkt: "thumbprint") }
        let mtls = minted { $0.confirmation = Confirmation(x5tS256: "thumbprint") }
        let emptyBinding = minted { $0.confirmation = Confirmation() }
        let decisions = introspector([access, refresh, dpop, mtls, emptyBinding])
        func decide(_ bearer: BearerPresentation) async throws -> GatewayDecision {
            try await decisions.authorize(bearer, caller: client(), requirements: GatewayRequirements())
        }
        #expect(try await decide(.token(access.0)) == .allowed(access.1))
        #expect(try await decide(.token(emptyBinding.0)) == .allowed(emptyBinding.1))
        #expect(try await decide(.absent) == .missingToken)
        for token in ["", refresh.0, dpop.0, mtls.0, OpaqueToken.generate(.access)] {
            #expect(try await decide(.token(token)) == .invalidToken, "\(token.prefix(8))")
        }
        // Introspection itself still reports them active (RFC 7662 leaves the judgement to the caller).
        #expect(try await decisions.introspect(refresh.0, caller: client()).isActive)
        #expect(try await decisions.introspect(dpop.0, caller: client()).isActive)
    }

    @Test func audienceNarrowsToInvalidTokenAndScopesToInsufficientScope() async throws {
        let access = minted()
        let decisions = introspector([access])
        func decide(_ requirements: GatewayRequirements, caller: ClientRecord = client()) async throws -> GatewayDecision {
            try await decisions.authorize(.token(access.0), caller: caller, requirements: requirements)
        }
        #expect(try await decide(GatewayRequirements(audience: "api", scopes: ["write", "read"])) == .allowed(access.1))
        #expect(try await decide(GatewayRequirements(audience: "other")) == .invalidToken)
        #expect(try await decide(GatewayRequirements(scopes: ["read", "admin"])) == .insufficientScope(required: ["read", "admin"]))
        #expect(try await decide(GatewayRequirements(audience: "other", scopes: ["admin"])) == .invalidToken)
        #expect(try await decide(GatewayRequirements(), caller: client(audiences: ["elsewhere"])) == .invalidToken)
        #expect(try await decide(GatewayRequirements(audience: "api"), caller: client(audiences: ["kube"])) == .allowed(access.1))
    }

    @Test func reviewAuthenticatesAccessTokensWithASubjectForIntersectingAudiences() async throws {
        let access = minted()
        let noSubject = minted { $0.subject = nil }
        let emptySubject = minted { $0.subject = "" }
        let refresh = minted(.refresh)
        let decisions = introspector([access, noSubject, emptySubject, refresh])
        let all = try #require(try await decisions.review(access.0, caller: client(), audiences: []))
        #expect(all.record == access.1 && all.audiences.isEmpty)
        let some = try #require(try await decisions.review(access.0, caller: client(), audiences: ["x", "kube", "api"]))
        #expect(some.audiences == ["kube", "api"])
        #expect(try await decisions.review(access.0, caller: client(), audiences: ["x"]) == nil)
        for token in [noSubject.0, emptySubject.0, refresh.0, "not-a-token"] {
            #expect(try await decisions.review(token, caller: client(), audiences: []) == nil)
        }
    }
}
