import Foundation
import Logging

/// Mints opaque tokens (32 bytes from the system CSPRNG) and stores their hashes.
public struct TokenIssuer: Sendable {
    public static let defaultTTL: TimeInterval = 3600
    public static let defaultRefreshTTL: TimeInterval = 30 * 86400
    public static let maximumTTL: TimeInterval = 366 * 86400
    /// Claim names an extra claim may not take: RFC 7662 §2.2's and tokend's own.
    public static let reservedClaims: Set<String> = [
        "active", "scope", "client_id", "username", "token_type", "exp", "iat", "nbf", "sub", "aud",
        "iss", "jti", "cnf", "grant_id",
    ]

    private let store: any TokendStore
    private let issuer: IssuerIdentifier
    private let now: Now
    private let logger: Logger

    public init(store: any TokendStore, issuer: String, now: @escaping Now = { Date() }, logger: Logger = Logger(label: "tokend.issue")) {
        self.init(store: store, issuer: IssuerIdentifier(issuer), now: now, logger: logger)
    }

    public init(store: any TokendStore, issuer: IssuerIdentifier, now: @escaping Now = { Date() }, logger: Logger = Logger(label: "tokend.issue")) {
        self.store = store
        self.issuer = issuer
        self.now = now
        self.logger = logger
    }

    /// Issuance requested by an authorization server: the caller needs role `issue`
    /// (`TokendError.missingRole`); an empty `clientID` means the caller itself.
    public func issue(_ request: IssueRequest, caller: ClientRecord) async throws -> IssuedTokens {
        guard caller.roles.contains(.issue) else { throw TokendError.missingRole("this client may not issue tokens") }
        var request = request
        if request.clientID.isEmpty { request.clientID = caller.id }
        return try await issue(request)
    }

    /// Issuance requested by an operator (the admin API): `clientID` is required. With an `audit`
    /// context, the issuance is recorded in the audit trail (by grant; never the token).
    public func issue(_ request: IssueRequest, audit: AuditContext? = nil) async throws -> IssuedTokens {
        guard !request.clientID.isEmpty else { throw TokendError.invalidRequest("client_id is required") }
        try validate(request)
        let client: ClientRecord?
        do { client = try await store.client(id: request.clientID) } catch { throw TokendError.unavailable }
        guard client != nil else { throw TokendError.notFound("no client \"\(request.clientID.prefix(128))\"") }

        return try await mint(request, audit: audit)
    }

    /// Mints and stores a new grant's tokens for a validated request of a known client (the
    /// token endpoint, which has both, calls this directly).
    func mint(_ request: IssueRequest, audit: AuditContext? = nil) async throws -> IssuedTokens {
        let time = now()
        let minted = make(request, grantID: Randomness.identifier(), at: time)
        let event = audit?.event(.tokenIssue, .grant, minted.access.grantID, detail: Self.auditDetail(minted), at: time)
        try await storeCall(logger, "storing issued tokens") { try await store.insertTokens(minted.records, audit: event) }
        logger.info(
            "tokens issued",
            metadata: [
                "client_id": "\(request.clientID)", "jti": "\(minted.access.jti)", "grant_id": "\(minted.access.grantID)",
                "refresh": "\(request.refresh)",
            ]
        )
        event?.log(to: logger)
        return minted
    }

    /// What an audit event records of an issuance: whose tokens, what they carry, not the tokens.
    private static func auditDetail(_ minted: IssuedTokens) -> [String: String] {
        let access = minted.access
        var detail = ["client_id": access.clientID, "jti": access.jti, "refresh": "\(minted.refresh != nil)", "expires_in": "\(minted.expiresIn)"]
        if let subject = access.subject { detail["subject"] = subject }
        if let scope = access.scope { detail["scope"] = scope }
        if !access.audiences.isEmpty { detail["audiences"] = access.audiences.joined(separator: " ") }
        return detail
    }

    /// The tokens of `request` under `grantID`, not stored: an access token, and a refresh token
    /// when asked for (expiring at `refreshExpiresAt`, else after the request's refresh lifetime).
    func make(_ request: IssueRequest, grantID: String, at time: Date, refreshExpiresAt: Date? = nil) -> IssuedTokens {
        // Whole seconds: RFC 7662 times are NumericDate, and a record must read back as written.
        let issuedAt = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
        let ttl = (request.ttl ?? Self.defaultTTL).rounded(.down)
        let accessToken = OpaqueToken.generate(.access)
        let access = record(
            for: accessToken,
            kind: .access,
            request: request,
            issuedAt: issuedAt,
            expiresAt: issuedAt.addingTimeInterval(ttl),
            grantID: grantID
        )
        var refreshToken: String?
        var refresh: TokenRecord?
        if request.refresh {
            let token = OpaqueToken.generate(.refresh)
            let refreshTTL = (request.refreshTTL ?? Self.defaultRefreshTTL).rounded(.down)
            var record = record(
                for: token,
                kind: .refresh,
                request: request,
                issuedAt: issuedAt,
                expiresAt: refreshExpiresAt ?? issuedAt.addingTimeInterval(refreshTTL),
                grantID: grantID
            )
            record.confirmation = request.confirmation
            refreshToken = token
            refresh = record
        }
        return IssuedTokens(accessToken: accessToken, access: access, refreshToken: refreshToken, refresh: refresh, expiresIn: Int64(ttl))
    }

    private func record(for token: String, kind: TokenKind, request: IssueRequest, issuedAt: Date, expiresAt: Date, grantID: String) -> TokenRecord {
        TokenRecord(
            hash: TokenHash(token: token),
            kind: kind,
            clientID: request.clientID,
            subject: request.subject.nonEmpty,
            username: request.username.nonEmpty,
            scope: request.scope.nonEmpty,
            audiences: request.audiences,
            issuer: issuer.current,
            issuedAt: issuedAt,
            notBefore: request.notBefore.map { Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down)) },
            expiresAt: expiresAt,
            jti: Randomness.identifier(),
            grantID: grantID,
            confirmation: (request.confirmation?.isEmpty ?? true) ? nil : request.confirmation,
            extra: request.extra
        )
    }

    func validate(_ request: IssueRequest) throws {
        try ClientRegistry.validate(clientID: request.clientID)
        if let subject = request.subject { try Validation.text(subject, field: "subject") }
        if let username = request.username { try Validation.text(username, field: "username") }
        if let scope = request.scope, !scope.isEmpty { try Validation.scope(scope) }
        try Validation.audiences(request.audiences)
        for (name, ttl) in [("ttl", request.ttl), ("refresh_ttl", request.refreshTTL)] {
            if let ttl, !(ttl >= 1 && ttl <= Self.maximumTTL) {
                throw TokendError.invalidRequest("\(name) must be between 1 second and 366 days")
            }
        }
        if let cnf = request.confirmation {
            try Validation.text(cnf.jkt ?? "", field: "cnf.jkt")
            try Validation.text(cnf.x5tS256 ?? "", field: "cnf.x5t#S256")
        }
        guard request.extra.count <= 64 else { throw TokendError.invalidRequest("at most 64 extra claims") }
        for (name, value) in request.extra {
            guard !name.isEmpty, name.utf8.count <= 128, !Self.reservedClaims.contains(name) else {
                throw TokendError.invalidRequest("extra claim names must be 1-128 characters and not a registered claim name")
            }
            try Validation.text(name, field: "extra claim name")
            try Validation.text(value, field: "extra claim \(name)")
        }
    }
}

extension Optional where Wrapped == String {
    /// `nil` for nil or empty, so that "" on the wire means "not set".
    var nonEmpty: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}
