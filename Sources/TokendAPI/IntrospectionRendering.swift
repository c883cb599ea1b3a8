import Foundation
import TokendCore
import TokendProto

/// RFC 7662 §2.2 response members for an introspection result.
struct IntrospectionJSON: Encodable {
    let result: IntrospectionResult

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        guard case .active(let t) = result else {
            // RFC 7662 §2.2: an inactive token gets `active` and nothing else.
            try c.encode(false, forKey: Key("active"))
            return
        }
        // Extra claims first, so that a registered claim can never be shadowed by one.
        for (name, value) in t.extra where !TokenIssuer.reservedClaims.contains(name) {
            try c.encode(value, forKey: Key(name))
        }
        try c.encode(true, forKey: Key("active"))
        try c.encodeIfPresent(t.scope, forKey: Key("scope"))
        try c.encode(t.clientID, forKey: Key("client_id"))
        try c.encodeIfPresent(t.username, forKey: Key("username"))
        try c.encodeIfPresent(t.tokenType, forKey: Key("token_type"))
        try c.encode(Int64(t.expiresAt.timeIntervalSince1970), forKey: Key("exp"))
        try c.encode(Int64(t.issuedAt.timeIntervalSince1970), forKey: Key("iat"))
        if let nbf = t.notBefore { try c.encode(Int64(nbf.timeIntervalSince1970), forKey: Key("nbf")) }
        try c.encodeIfPresent(t.subject, forKey: Key("sub"))
        if !t.audiences.isEmpty {
            // RFC 7519 §4.1.3: a single audience may be a string; a list keeps one shape for clients.
            try c.encode(t.audiences, forKey: Key("aud"))
        }
        try c.encode(t.issuer, forKey: Key("iss"))
        try c.encode(t.jti, forKey: Key("jti"))
        if let cnf = t.confirmation, !cnf.isEmpty {
            var members: [String: String] = [:]
            if let jkt = cnf.jkt, !jkt.isEmpty { members["jkt"] = jkt }
            if let x5t = cnf.x5tS256, !x5t.isEmpty { members["x5t#S256"] = x5t }
            try c.encode(members, forKey: Key("cnf"))
        }
    }
}

extension IntrospectionResult {
    var metricLabel: String {
        if case .active = self { return "active" }
        return "inactive"
    }
}

extension Tokend_V1_IntrospectResponse {
    init(_ result: IntrospectionResult) {
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
    init(_ issued: IssuedTokens) {
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

extension IssueRequest {
    init(_ m: Tokend_V1_IssueTokenRequest, clientID: String) {
        let cnf = m.hasCnf ? Confirmation(jkt: m.cnf.jkt.isEmpty ? nil : m.cnf.jkt, x5tS256: m.cnf.x5TS256.isEmpty ? nil : m.cnf.x5TS256) : nil
        self.init(
            clientID: clientID, subject: m.subject, username: m.username, scope: m.scope, audiences: m.audiences,
            ttl: m.ttlSeconds > 0 ? TimeInterval(m.ttlSeconds) : nil, refresh: m.refresh,
            refreshTTL: m.refreshTtlSeconds > 0 ? TimeInterval(m.refreshTtlSeconds) : nil,
            confirmation: cnf, extra: m.extra,
            notBefore: m.nbf > 0 ? Date(timeIntervalSince1970: TimeInterval(m.nbf)) : nil)
    }
}
