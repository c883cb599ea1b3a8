import Foundation
import Logging

/// The answer to "is this token active, and what does it carry?" (RFC 7662 §2.2).
public enum IntrospectionResult: Sendable, Equatable {
    /// Unknown, expired, not yet valid, revoked, malformed, too long, or outside the caller's
    /// audiences: RFC 7662 answers all of these with `{"active":false}` and nothing else.
    case inactive
    case active(TokenRecord)
}

/// Decides whether a token is active. All of RFC 7662's policy lives here, written once for the
/// form endpoint, the Connect endpoint and the admin API.
public struct Introspector: Sendable {
    private let store: any TokenStore
    private let now: Now
    private let logger: Logger

    public init(store: any TokenStore, now: @escaping Now = { Date() }, logger: Logger = Logger(label: "tokend.introspect")) {
        self.store = store
        self.now = now
        self.logger = logger
    }

    /// Introspects a raw token for a caller whose audience restriction is `audiences` (empty: none).
    /// Throws `TokendError.unavailable` when the store cannot answer: never a guess either way.
    public func introspect(token: String, audiences: [String]) async throws -> IntrospectionResult {
        guard token.utf8.count <= OpaqueToken.maximumLength, OpaqueToken.isWellFormed(token) else { return .inactive }
        let hash = TokenHash(token: token)
        let record: TokenRecord?
        do {
            record = try await store.token(hash: hash)
        } catch {
            logger.warning("token store lookup failed", metadata: ["token_hash": "\(hash)", "error": "\(String(reflecting: type(of: error)))"])
            throw TokendError.unavailable
        }
        guard let record else { return .inactive }
        return Self.evaluate(record, audiences: audiences, at: now())
    }

    /// RFC 7662 policy on a known record: revocation, validity window and audience restriction.
    public static func evaluate(_ record: TokenRecord, audiences: [String], at now: Date) -> IntrospectionResult {
        if record.revokedAt != nil { return .inactive }
        if record.expiresAt <= now { return .inactive }
        if let nbf = record.notBefore, nbf > now { return .inactive }
        if !audiences.isEmpty, !record.audiences.contains(where: audiences.contains) { return .inactive }
        return .active(record)
    }
}

/// Revokes tokens: RFC 7009 for clients, selectors for operators.
public struct Revoker: Sendable {
    private let store: any TokenStore
    private let now: Now
    private let logger: Logger

    public init(store: any TokenStore, now: @escaping Now = { Date() }, logger: Logger = Logger(label: "tokend.revoke")) {
        self.store = store
        self.now = now
        self.logger = logger
    }

    /// RFC 7009 §2.1–2.2: revokes `token` on behalf of `caller`. Unknown and malformed tokens
    /// succeed without effect (the hint is only a hint and is not needed here). A client without
    /// role `revoke` may revoke only tokens issued to itself; otherwise `TokendError.forbidden`,
    /// and the token stays active. Returns when the revocation is committed.
    @discardableResult
    public func revoke(token: String, caller: ClientRecord) async throws -> RevocationOutcome {
        let nothing = RevocationOutcome(revoked: 0, seq: 0)
        guard token.utf8.count <= OpaqueToken.maximumLength, OpaqueToken.isWellFormed(token) else { return nothing }
        let hash = TokenHash(token: token)
        let record = try await storeCall { try await store.token(hash: hash) }
        guard let record else { return nothing }
        guard record.clientID == caller.id || caller.roles.contains(.revoke) else {
            throw TokendError.forbidden("the token was not issued to this client")
        }
        if record.revokedAt != nil { return nothing }
        let outcome = try await storeCall {
            try await store.revoke(.token(hash), reason: "rfc7009 revocation by client \(caller.id)", at: now())
        }
        logger.info("token revoked", metadata: ["token_hash": "\(hash)", "client_id": "\(caller.id)", "revoked": "\(outcome.revoked)", "seq": "\(outcome.seq)"])
        return outcome
    }

    /// Revokes what `selector` covers; subject and client selectors cover tokens issued up to now.
    public func revoke(_ selector: RevocationSelector, reason: String) async throws -> RevocationOutcome {
        switch selector {
        case .jti(let v), .subject(let v), .client(let v), .grant(let v):
            guard !v.isEmpty, v.utf8.count <= Validation.maximumFieldLength else {
                throw TokendError.invalidRequest("the \(selector.kind) selector must be 1-1024 characters")
            }
        case .token:
            break
        }
        try Validation.text(reason, field: "reason")
        let outcome = try await storeCall { try await store.revoke(selector, reason: reason, at: now()) }
        logger.info("revocation committed", metadata: ["selector": "\(selector.kind)", "revoked": "\(outcome.revoked)", "seq": "\(outcome.seq)"])
        return outcome
    }

    private func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as TokendError {
            throw error
        } catch {
            logger.warning("token store call failed", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            throw TokendError.unavailable
        }
    }
}
