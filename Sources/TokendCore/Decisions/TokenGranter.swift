import Foundation
import Logging

/// What a client asks of `/oauth2/token` (RFC 6749 §4.4.2, §6), parsed but not yet judged.
public struct TokenRequest: Sendable {
    public var grantType: String?
    /// Space-separated scopes; `nil` or empty when not given.
    public var scope: String?
    public var refreshToken: String?
    /// `audience` and RFC 8707 `resource` values, together: both name where the token may be used.
    public var targets: [String]

    public init(grantType: String?, scope: String? = nil, refreshToken: String? = nil, targets: [String] = []) {
        self.grantType = grantType
        self.scope = scope
        self.refreshToken = refreshToken
        self.targets = targets
    }
}

/// The token endpoint's decisions: `client_credentials` (RFC 6749 §4.4) and `refresh_token` (§6)
/// with rotation and reuse detection (RFC 9700 §4.14.2). One type for the form endpoint, Connect
/// and gRPC.
public struct TokenGranter: Sendable {
    public static let grantTypes = ["client_credentials", "refresh_token"]

    private let store: any TokenStore
    private let issuer: TokenIssuer
    private let revoker: Revoker
    private let now: Now
    private let logger: Logger
    private let metrics: (any DecisionMetrics)?
    private let limiter: GuessLimiter?

    /// With a `limiter`, never-issued refresh tokens count as guesses of the caller, as never-issued
    /// tokens at introspection do (SPEC "Clients and roles").
    public init(
        store: any TokenStore,
        issuer: TokenIssuer,
        revoker: Revoker,
        now: @escaping Now = { Date() },
        logger: Logger,
        metrics: (any DecisionMetrics)? = nil,
        limiter: GuessLimiter? = nil
    ) {
        self.store = store
        self.issuer = issuer
        self.revoker = revoker
        self.now = now
        self.logger = logger
        self.metrics = metrics
        self.limiter = limiter
    }

    /// Answers a token request of an authenticated client.
    public func grant(_ request: TokenRequest, caller: ClientRecord) async throws -> IssuedTokens {
        guard let grantType = request.grantType, !grantType.isEmpty else { throw TokendError.invalidRequest("grant_type is required") }
        switch grantType {
        case "client_credentials":
            return try await clientCredentials(scope: request.scope, targets: request.targets, caller: caller)
        case "refresh_token":
            guard request.targets.isEmpty else {
                // A redemption keeps the grant's audiences; RFC 8707 §2.2 narrowing is not offered.
                throw TokendError.invalidTarget("audience and resource cannot be changed on refresh")
            }
            return try await refresh(request.refreshToken, scope: request.scope, caller: caller)
        default:
            throw TokendError(.unsupportedGrantType, "grant_type must be one of: \(Self.grantTypes.joined(separator: ", "))")
        }
    }

    /// RFC 6749 §4.4: tokens for the client itself (`sub` = `client_id`), within its allowed
    /// scopes (all of them when none is asked for) and audiences; no refresh token (§4.4.3).
    public func clientCredentials(scope: String?, targets: [String], caller: ClientRecord) async throws -> IssuedTokens {
        try await counted("client_credentials") { try await mintForClient(scope: scope, targets: targets, caller: caller) }
    }

    /// A spent refresh token came back (its grant is revoked by now).
    private struct Reuse: Error {}

    /// Runs one grant's decision and counts its outcome; `Reuse` becomes `invalid_grant`.
    private func counted(_ grantType: String, _ body: () async throws -> IssuedTokens) async throws -> IssuedTokens {
        do {
            let granted = try await body()
            metrics?.tokenRequest(grantType: grantType, outcome: .granted)
            return granted
        } catch is Reuse {
            metrics?.tokenRequest(grantType: grantType, outcome: .reuse)
            throw TokendError.invalidGrant("the refresh token was already used; its grant is revoked")
        } catch {
            metrics?.tokenRequest(grantType: grantType, outcome: .refused)
            throw error
        }
    }

    private func mintForClient(scope: String?, targets: [String], caller: ClientRecord) async throws -> IssuedTokens {
        guard caller.roles.contains(.clientCredentials) else {
            throw TokendError(.unauthorizedClient, "this client may not use the client_credentials grant")
        }
        let scopes: [String]
        if let scope, !scope.isEmpty {
            scopes = try Self.scopes(scope, within: caller.scopes, what: "the client's allowed scopes")
        } else {
            scopes = caller.scopes
        }
        var audiences: [String] = []
        for target in targets where !audiences.contains(target) {
            guard caller.audiences.contains(target) else {
                throw TokendError.invalidTarget("\"\(target.prefix(64))\" is not among the client's audiences")
            }
            audiences.append(target)
        }
        if targets.isEmpty { audiences = caller.audiences }
        let request = IssueRequest(clientID: caller.id, subject: caller.id, scope: scopes.joined(separator: " "), audiences: audiences)
        try issuer.validate(request)
        return try await issuer.mint(request)
    }

    /// How a redemption ended inside its transaction.
    private enum Redemption: Sendable {
        case redeemed(IssuedTokens)
        case refused(TokendError)
        /// The store has no record of the token: a guess, as the limiter counts them.
        case neverIssued
        /// A spent token came back: its grant is revoked.
        case reused(RevocationOutcome, grantID: String)
    }

    /// RFC 6749 §6 with rotation: the caller's own, current refresh token is spent and a new pair
    /// of the same grant is returned (the new refresh token keeps the old one's expiry and scope;
    /// the access token may have a narrower scope). A spent token presented again is reuse: the
    /// whole grant is revoked through the revocation log, and the answer is `invalid_grant`.
    public func refresh(_ token: String?, scope: String?, caller: ClientRecord) async throws -> IssuedTokens {
        try await counted("refresh_token") { try await redeem(token, scope: scope, caller: caller) }
    }

    private func redeem(_ token: String?, scope: String?, caller: ClientRecord) async throws -> IssuedTokens {
        guard let token, !token.isEmpty else { throw TokendError.invalidRequest("refresh_token is required") }
        let invalid = TokendError.invalidGrant("the refresh token is invalid, expired, revoked or was issued to another client")
        guard token.utf8.count <= OpaqueToken.maximumLength, OpaqueToken.isWellFormed(token), token.hasPrefix(TokenKind.refresh.prefix) else {
            throw invalid
        }
        let narrowed = (scope?.isEmpty ?? true) ? nil : scope
        if let narrowed { try Self.syntax(narrowed) }
        try limiter?.checkUnknownTokens(caller: caller.id)
        let hash = TokenHash(token: token)
        let time = now()
        let issuer = issuer
        let outcome = try await storeCall(logger, "redeeming a refresh token") {
            try await store.withRevocationTransaction { transaction -> Redemption in
                guard let record = try await transaction.token(hash: hash) else { return .neverIssued }
                guard record.kind == .refresh, record.clientID == caller.id else { return .refused(invalid) }
                if record.spentAt != nil {
                    // Revoked already (an earlier reuse revoked the grant): nothing more to do.
                    if record.revokedAt != nil { return .refused(invalid) }
                    let outcome = try await Revoker.commit(.grant(record.grantID), reason: "refresh token reuse", at: time, in: transaction)
                    return .reused(outcome, grantID: record.grantID)
                }
                guard record.revokedAt == nil, record.expiresAt > time, (record.notBefore ?? time) <= time else { return .refused(invalid) }
                let granted = Self.scopeTokens(record.scope ?? "")
                var accessScope = record.scope
                if let narrowed {
                    do {
                        accessScope = try Self.scopes(narrowed, within: granted, what: "the scope originally granted").joined(separator: " ")
                    } catch let error as TokendError {
                        return .refused(error)
                    }
                }
                let ttl = try await transaction.grantAccessTTL(record.grantID).map(TimeInterval.init)
                var minted = issuer.make(
                    IssueRequest(
                        clientID: record.clientID,
                        subject: record.subject,
                        username: record.username,
                        scope: record.scope,
                        audiences: record.audiences,
                        ttl: ttl,
                        refresh: true,
                        confirmation: record.confirmation,
                        extra: record.extra
                    ),
                    grantID: record.grantID,
                    at: time,
                    refreshExpiresAt: record.expiresAt
                )
                minted.access.scope = accessScope
                try await transaction.markSpent(hash, at: time)
                try await transaction.insertTokens(minted.records)
                return .redeemed(minted)
            }
        }
        switch outcome {
        case .redeemed(let minted):
            logger.info(
                "refresh token redeemed",
                metadata: ["client_id": "\(caller.id)", "grant_id": "\(minted.access.grantID)", "jti": "\(minted.access.jti)"]
            )
            return minted
        case .refused(let error):
            throw error
        case .neverIssued:
            limiter?.askedNeverIssuedToken(caller: caller.id)
            throw invalid
        case .reused(let outcome, let grantID):
            await revoker.didCommit(outcome, at: time)
            logger.warning(
                "refresh token reuse: grant revoked",
                metadata: ["client_id": "\(caller.id)", "grant_id": "\(grantID)", "revoked": "\(outcome.revoked)", "seq": "\(outcome.seq)"]
            )
            throw Reuse()
        }
    }

    /// The scope tokens of `scope`, in order, without repeats, each of which must be in `allowed`.
    static func scopes(_ scope: String, within allowed: [String], what: String) throws -> [String] {
        try syntax(scope)
        var result: [String] = []
        for token in scopeTokens(scope) where !result.contains(token) {
            guard allowed.contains(token) else { throw TokendError.invalidScope("\"\(token.prefix(64))\" is outside \(what)") }
            result.append(token)
        }
        return result
    }

    /// RFC 6749 §3.3 syntax; a malformed scope is `invalid_scope` (§5.2: "invalid, unknown, or malformed").
    static func syntax(_ scope: String) throws {
        do { try Validation.scope(scope) } catch let error as TokendError { throw TokendError.invalidScope(error.message) }
    }

    static func scopeTokens(_ scope: String) -> [String] {
        scope.split(separator: " ").map(String.init)
    }
}
