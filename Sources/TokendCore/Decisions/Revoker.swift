import Foundation
import Logging

/// Revokes tokens: RFC 7009 for clients, selectors for operators.
public struct Revoker: Sendable {
    private let store: any TokenStore
    private let now: Now
    private let logger: Logger
    private let afterCommit: (@Sendable (Date) async -> Void)?
    private let metrics: (any DecisionMetrics)?

    /// `afterCommit` runs after each committed revocation, before the caller is answered, with the
    /// time the revocation was made: the replica applies it to its own memory there, so that its
    /// next answer already reflects it (read-your-writes on the replica that acknowledged it).
    public init(
        store: any TokenStore,
        now: @escaping Now = { Date() },
        logger: Logger = Logger(label: "tokend.revoke"),
        metrics: (any DecisionMetrics)? = nil,
        afterCommit: (@Sendable (Date) async -> Void)? = nil
    ) {
        self.store = store
        self.now = now
        self.logger = logger
        self.metrics = metrics
        self.afterCommit = afterCommit
    }

    /// Revocation on `replica`'s store, applied to its memory before each acknowledgement.
    public init(replica: Replica, logger: Logger, metrics: (any DecisionMetrics)? = nil) {
        self.init(
            store: replica.store,
            now: replica.now,
            logger: logger,
            metrics: metrics,
            afterCommit: { time in
                await replica.didCommitRevocation(at: time)
            }
        )
    }

    /// RFC 7009 §2.1 for an authenticated client: `token` is required (`invalidRequest`); the rest
    /// as `revoke(token:caller:)`.
    @discardableResult
    public func revoke(_ token: String?, caller: ClientRecord) async throws -> RevocationOutcome {
        guard let token else { throw TokendError.invalidRequest("token is required") }
        return try await revoke(token: token, caller: caller)
    }

    /// RFC 7009 §2.1–2.2: revokes `token` on behalf of `caller`. Unknown and malformed tokens
    /// succeed without effect (the hint is only a hint and is not needed here). A client without
    /// role `revoke` may revoke only tokens issued to itself; otherwise `TokendError.notOwner`,
    /// and the token stays active. Returns when the revocation is committed.
    @discardableResult
    public func revoke(token: String, caller: ClientRecord) async throws -> RevocationOutcome {
        let nothing = RevocationOutcome(revoked: 0, seq: 0)
        guard token.utf8.count <= OpaqueToken.maximumLength, OpaqueToken.isWellFormed(token) else { return nothing }
        let hash = TokenHash(token: token)
        let record = try await storeCall(logger, "reading a token") { try await store.token(hash: hash) }
        guard let record else { return nothing }
        guard record.clientID == caller.id || caller.roles.contains(.revoke) else {
            throw TokendError.notOwner
        }
        if record.revokedAt != nil { return nothing }
        let time = now()
        let outcome = try await storeCall(logger, "committing a revocation") {
            try await Self.commit(.token(hash), reason: "rfc7009 revocation by client \(caller.id)", at: time, to: store)
        }
        await afterCommit?(time)
        metrics?.revoked(count: outcome.revoked)
        logger.info(
            "token revoked",
            metadata: ["token_hash": "\(hash)", "client_id": "\(caller.id)", "revoked": "\(outcome.revoked)", "seq": "\(outcome.seq)"]
        )
        return outcome
    }

    /// Revokes what `selector` covers; subject and client selectors cover tokens issued up to now.
    /// With an `audit` context (an operator's request), the revocation is recorded in the audit
    /// trail in its own transaction, also when it found nothing to revoke.
    public func revoke(_ selector: RevocationSelector, reason: String, audit: AuditContext? = nil) async throws -> RevocationOutcome {
        switch selector {
        case .jti(let v), .subject(let v), .client(let v), .grant(let v):
            guard !v.isEmpty, v.utf8.count <= Validation.maximumFieldLength else {
                throw TokendError.invalidRequest("the \(selector.kind) selector must be 1-1024 characters")
            }
            try Validation.text(v, field: "the \(selector.kind) selector")
        case .token:
            break
        }
        try Validation.text(reason, field: "reason")
        let time = now()
        let (outcome, event) = try await storeCall(logger, "committing a revocation") {
            try await store.withRevocationTransaction { transaction -> (RevocationOutcome, AuditEvent?) in
                let outcome = try await Self.commit(selector, reason: reason, at: time, in: transaction)
                let event = audit.map { Self.auditEvent($0, selector, reason: reason, outcome: outcome, at: time) }
                if let event { try await transaction.record(event) }
                return (outcome, event)
            }
        }
        if outcome.seq != 0 { await afterCommit?(time) }
        metrics?.revoked(count: outcome.revoked)
        logger.info("revocation committed", metadata: ["selector": "\(selector.kind)", "revoked": "\(outcome.revoked)", "seq": "\(outcome.seq)"])
        event?.log(to: logger)
        return outcome
    }

    /// The audit event of an operator's revocation: the selector as its target (a token by its
    /// hash prefix, never the token), the reason and the outcome as its detail.
    static func auditEvent(
        _ context: AuditContext,
        _ selector: RevocationSelector,
        reason: String,
        outcome: RevocationOutcome,
        at time: Date
    ) -> AuditEvent {
        let (kind, target): (AuditEvent.TargetKind, String) =
            switch selector {
            case .token(let hash): (.token, hash.description)
            case .jti(let v): (.jti, v)
            case .subject(let v): (.subject, v)
            case .client(let v): (.client, v)
            case .grant(let v): (.grant, v)
            }
        let detail = ["reason": reason, "revoked": "\(outcome.revoked)", "seq": "\(outcome.seq)"]
        return context.event(.revoke, kind, target, detail: detail, at: time)
    }

    /// Marks what `selector` covers revoked at `time` and appends its log entry, in one store
    /// transaction: when this returns, the revocation is committed. No validation: the public
    /// `revoke` methods validate, then call this.
    ///
    /// - A token (by hash or jti) revokes that token alone, unless it is a refresh token: then its
    ///   whole grant, logged as a `grant` entry (RFC 7009 §2.1). When that revokes nothing new
    ///   (unknown or already revoked), nothing is logged and the outcome's `seq` is 0.
    /// - Token, jti and grant entries carry the hashes they revoked, for replicas' filters.
    ///   Subject and client entries are rules matched by issue time and carry none; like every
    ///   entry they live until the latest expiry of the tokens they revoked.
    public static func commit(
        _ selector: RevocationSelector,
        reason: String,
        at time: Date,
        to store: any TokenStore
    ) async throws -> RevocationOutcome {
        try await store.withRevocationTransaction { transaction in
            try await commit(selector, reason: reason, at: time, in: transaction)
        }
    }

    /// `commit(_:reason:at:to:)` inside a transaction the caller holds (a refresh token's
    /// redemption that turns out to be reuse revokes its grant in its own transaction).
    public static func commit(
        _ selector: RevocationSelector,
        reason: String,
        at time: Date,
        in transaction: any RevocationTransaction
    ) async throws -> RevocationOutcome {
        let nothing = RevocationOutcome(revoked: 0, seq: 0)
        let kind: RevocationEntry.Kind
        let value: String
        let match: TokenMatch
        switch selector {
        case .token(let hash):
            guard let record = try await transaction.token(hash: hash) else { return nothing }
            (kind, value, match) = target(record, named: .token)
        case .jti(let jti):
            guard let record = try await transaction.token(jti: jti) else { return nothing }
            (kind, value, match) = target(record, named: .jti)
        case .subject(let subject): (kind, value, match) = (.subject, subject, .subject(subject))
        case .client(let clientID): (kind, value, match) = (.client, clientID, .client(clientID))
        case .grant(let grantID): (kind, value, match) = (.grant, grantID, .grant(grantID))
        }
        let revoked = try await transaction.markRevoked(match, at: time)
        let namesOneToken = selector.kind == .token || selector.kind == .jti
        if namesOneToken && revoked.isEmpty { return nothing }
        let isRule = kind == .subject || kind == .client
        let seq = try await transaction.append(
            NewRevocationEntry(
                kind: kind,
                value: value,
                tokenHashes: isRule ? [] : revoked.map(\.hash),
                reason: reason,
                revokedCount: Int64(revoked.count),
                createdAt: time,
                expiresAt: revoked.map(\.expiresAt).reduce(time, max)
            )
        )
        return RevocationOutcome(revoked: Int64(revoked.count), seq: seq)
    }

    /// What follows a revocation committed in a caller's own transaction (`commit(_:reason:at:in:)`):
    /// this replica's memory learns it before the caller is answered, and the metrics count it.
    public func didCommit(_ outcome: RevocationOutcome, at time: Date) async {
        if outcome.seq != 0 { await afterCommit?(time) }
        metrics?.revoked(count: outcome.revoked)
    }

    /// RFC 7009 §2.1: a refresh token is revoked with its whole grant, an access token alone.
    private static func target(_ record: TokenRecord, named kind: RevocationEntry.Kind) -> (RevocationEntry.Kind, String, TokenMatch) {
        record.kind == .refresh ? (.grant, record.grantID, .grant(record.grantID)) : (kind, record.jti, .hash(record.hash))
    }
}
