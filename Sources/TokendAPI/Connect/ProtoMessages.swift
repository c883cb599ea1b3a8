import Foundation
import TokendCore
import TokendProto

// Core values to and from the `tokend.v1` messages, shared by the public and admin services.

extension Tokend_V1_IntrospectResponse {
    public init(_ result: IntrospectionResult) {
        self.init()
        guard case .active(let t) = result else {
            active = false
            return
        }
        active = true
        scope = t.scope ?? ""
        clientID = t.clientID
        username = t.username ?? ""
        tokenType = t.tokenType ?? ""
        exp = Int64(t.expiresAt.timeIntervalSince1970)
        iat = Int64(t.issuedAt.timeIntervalSince1970)
        nbf = t.notBefore.map { Int64($0.timeIntervalSince1970) } ?? 0
        sub = t.subject ?? ""
        aud = t.audiences
        iss = t.issuer
        jti = t.jti
        if let cnf = t.confirmation, !cnf.isEmpty {
            self.cnf.jkt = cnf.jkt ?? ""
            self.cnf.x5TS256 = cnf.x5tS256 ?? ""
        }
        ext = t.extra
        grantID = t.grantID
    }
}

extension Tokend_V1_IssueTokenResponse {
    public init(_ issued: IssuedTokens) {
        self.init()
        accessToken = issued.accessToken
        tokenType = issued.access.tokenType ?? "Bearer"
        expiresIn = issued.expiresIn
        refreshToken = issued.refreshToken ?? ""
        scope = issued.access.scope ?? ""
        grantID = issued.access.grantID
        jti = issued.access.jti
    }
}

extension Tokend_V1_RevocationEvent {
    /// SPEC's `RevocationEvent`: hashes as 32 raw bytes, times as Unix seconds; `issued_before`
    /// is the entry's cutoff (its commit time).
    public init(_ entry: RevocationEntry) {
        self.init()
        seq = entry.seq
        kind = entry.kind.rawValue
        tokenHashes = entry.tokenHashes.map { Data($0.bytes) }
        selector = entry.value
        issuedBefore = Int64(entry.createdAt.timeIntervalSince1970)
        expiresAt = Int64(entry.expiresAt.timeIntervalSince1970)
    }
}

extension Tokend_V1_TokenResponse {
    public init(_ issued: IssuedTokens) {
        self.init()
        accessToken = issued.accessToken
        tokenType = issued.access.tokenType ?? "Bearer"
        expiresIn = issued.expiresIn
        refreshToken = issued.refreshToken ?? ""
        scope = issued.access.scope ?? ""
    }
}

extension TokenRequest {
    public init(_ m: Tokend_V1_TokenRequest) {
        self.init(grantType: m.grantType.nonEmpty, scope: m.scope.nonEmpty, refreshToken: m.refreshToken.nonEmpty, targets: m.audience + m.resource)
    }
}

extension Tokend_V1_Client {
    public init(_ c: ClientRecord) {
        self.init()
        clientID = c.id
        roles = c.sortedRoles
        audiences = c.audiences
        scopes = c.scopes
        createdAt = Int64(c.createdAt.timeIntervalSince1970)
    }
}

extension IssueRequest {
    /// An issuance request from its message; an empty `client_id` stays empty (the caller itself,
    /// or required, as the operation decides).
    public init(_ m: Tokend_V1_IssueTokenRequest) throws {
        guard m.grantID.isEmpty else {
            throw TokendError.invalidRequest("issuing under an existing grant_id is not supported; omit grant_id")
        }
        let cnf = m.hasCnf ? Confirmation(jkt: m.cnf.jkt.isEmpty ? nil : m.cnf.jkt, x5tS256: m.cnf.x5TS256.isEmpty ? nil : m.cnf.x5TS256) : nil
        self.init(
            clientID: m.clientID,
            subject: m.subject,
            username: m.username,
            scope: m.scope,
            audiences: m.audiences,
            ttl: m.ttlSeconds > 0 ? TimeInterval(m.ttlSeconds) : nil,
            refresh: m.refresh,
            refreshTTL: m.refreshTtlSeconds > 0 ? TimeInterval(m.refreshTtlSeconds) : nil,
            confirmation: cnf,
            extra: m.extra,
            notBefore: m.nbf > 0 ? Date(timeIntervalSince1970: TimeInterval(m.nbf)) : nil
        )
    }
}
