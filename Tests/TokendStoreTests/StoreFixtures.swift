import Foundation
import Testing
import TokendCore
import TokendTestSupport

/// Swift Testing has a `Confirmation` too; in these tests the name means RFC 7800 `cnf`.
typealias Confirmation = TokendCore.Confirmation

/// Whole seconds: both stores must read back exactly what was written, and RFC 7662 times are
/// NumericDate anyway.
let t0 = Date(timeIntervalSince1970: 1_800_000_000)

/// A raw token and the record a store keeps for it.
struct Minted: Sendable {
    var token: String
    var record: TokenRecord
    var hash: TokenHash { record.hash }
}

/// A token record with the given fields; everything optional defaults to "not set".
func mint(
    _ kind: TokenKind = .access,
    client: String = "app",
    subject: String? = "alice",
    username: String? = nil,
    scope: String? = nil,
    audiences: [String] = [],
    issuedAt: Date = t0,
    notBefore: Date? = nil,
    ttl: TimeInterval = 3600,
    grant: String = Randomness.identifier(),
    confirmation: Confirmation? = nil,
    extra: [String: String] = [:]
) -> Minted {
    let token = OpaqueToken.generate(kind)
    let record = TokenRecord(
        hash: TokenHash(token: token),
        kind: kind,
        clientID: client,
        subject: subject,
        username: username,
        scope: scope,
        audiences: audiences,
        issuer: "https://tokend.test",
        issuedAt: issuedAt,
        notBefore: notBefore,
        expiresAt: issuedAt.addingTimeInterval(ttl),
        jti: Randomness.identifier(),
        grantID: grant,
        confirmation: confirmation,
        extra: extra
    )
    return Minted(token: token, record: record)
}

/// An access token, a second access token and a refresh token of one grant.
struct Grant: Sendable {
    var id: String
    var access: Minted
    var access2: Minted
    var refresh: Minted
    var all: [Minted] { [access, access2, refresh] }
}

func makeGrant(client: String = "app", subject: String? = "alice", issuedAt: Date = t0) -> Grant {
    let id = Randomness.identifier()
    return Grant(
        id: id,
        access: mint(.access, client: client, subject: subject, issuedAt: issuedAt, grant: id),
        access2: mint(.access, client: client, subject: subject, issuedAt: issuedAt, grant: id),
        refresh: mint(.refresh, client: client, subject: subject, issuedAt: issuedAt, ttl: 30 * 86400, grant: id)
    )
}

func insert(_ grant: Grant, into store: any TokendStore) async throws {
    try await store.insertTokens(grant.all.map(\.record))
}

func makeClient(_ id: String, roles: Set<Role> = [.introspect], audiences: [String] = [], createdAt: Date = t0) -> ClientRecord {
    let hashed = ClientSecret.hash(ClientSecret.generate())
    return ClientRecord(id: id, roles: roles, audiences: audiences, secretSalt: hashed.salt, secretHash: hashed.hash, createdAt: createdAt)
}

extension TokenStore {
    /// `Revoker`'s plan at a given time, without the request validation of `Revoker.revoke`.
    func revoke(_ selector: RevocationSelector, reason: String, at time: Date) async throws -> RevocationOutcome {
        try await Revoker.commit(selector, reason: reason, at: time, to: self)
    }
}

/// `revokedAt` of the stored record; fails the test when the token is unknown.
func revokedAt(_ minted: Minted, in store: any TokendStore, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Date? {
    let record = try await store.token(hash: minted.hash)
    #expect(record != nil, "token \(minted.hash) is not in the store", sourceLocation: sourceLocation)
    return record?.revokedAt
}

/// The whole revocation log.
func log(_ store: any TokendStore) async throws -> [RevocationEntry] {
    try await store.revocations(after: 0, limit: 100_000)
}

/// Expects `body` to throw a `TokendError` with `code`.
func expectError<R>(
    _ code: TokendError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> R
) async {
    do {
        let value = try await body()
        Issue.record("expected TokendError(\(code)), got the value \(value)", sourceLocation: sourceLocation)
    } catch let error as TokendError {
        #expect(error.code == code, "message: \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected TokendError(\(code)), got \(String(reflecting: error))", sourceLocation: sourceLocation)
    }
}
