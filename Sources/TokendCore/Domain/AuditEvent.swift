import Foundation

/// Who asked for an admin action, and in which request: what the audit trail records beside the
/// action. Built by the admin dialect from the caller it authenticated; passed down to the store
/// call, never kept anywhere else.
public struct AuditContext: Sendable, Equatable {
    /// The authenticated caller (the admin API has one credential: `admin`).
    public var actor: String
    /// The request id of the access log line, so an event leads to its request.
    public var requestID: String

    public init(actor: String, requestID: String) {
        self.actor = actor
        self.requestID = requestID
    }

    /// The event this context records for `action` on `target`, at `time`.
    public func event(
        _ action: AuditEvent.Action,
        _ targetKind: AuditEvent.TargetKind,
        _ target: String,
        detail: [String: String] = [:],
        at time: Date
    ) -> AuditEvent {
        AuditEvent(
            seq: 0,
            at: time,
            actor: actor,
            requestID: requestID,
            action: action,
            targetKind: targetKind,
            target: target,
            detail: detail
        )
    }
}

/// One row of the audit trail: an admin action, written in the same store transaction as the
/// action itself, so that an action is recorded exactly when it took effect.
///
/// Targets and details name clients, grants, subjects, jtis, key ids and 12-hex-digit token hash
/// prefixes (as log lines do): never a secret, a private key or a raw token.
public struct AuditEvent: Sendable, Equatable {
    /// What was done. The raw values are stored and sent on the wire.
    public enum Action: String, Sendable, CaseIterable {
        case clientCreate = "client.create"
        case clientUpdate = "client.update"
        case clientDelete = "client.delete"
        case clientRotateSecret = "client.rotate_secret"
        case tokenIssue = "token.issue"
        case revoke = "revoke"
        case signingKeyRotate = "signing_key.rotate"
    }

    /// What `target` names.
    public enum TargetKind: String, Sendable, CaseIterable {
        case client
        case grant
        /// A token, by the 12-hex-digit prefix of its SHA-256.
        case token
        case jti
        case subject
        case signingKey = "signing_key"
    }

    /// Given by the store when the event is appended (0 before); increasing.
    public var seq: Int64
    public var at: Date
    public var actor: String
    public var requestID: String
    public var action: Action
    public var targetKind: TargetKind
    public var target: String
    /// Further facts of the action (roles given, tokens revoked, the previous key …), as strings.
    public var detail: [String: String]

    public init(
        seq: Int64,
        at: Date,
        actor: String,
        requestID: String,
        action: Action,
        targetKind: TargetKind,
        target: String,
        detail: [String: String]
    ) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.requestID = requestID
        self.action = action
        self.targetKind = targetKind
        self.target = target
        self.detail = detail
    }
}

extension AuditEvent {
    /// An event as a store reads it back: `action`, `targetKind` and `detail` (a JSON object of
    /// strings) as stored. A value no version of tokend writes throws `StoreCorruption`.
    public init(
        stored seq: Int64,
        at: Date,
        actor: String,
        requestID: String,
        action: String,
        targetKind: String,
        target: String,
        detail: String
    ) throws {
        guard let parsedAction = Action(rawValue: action) else { throw StoreCorruption(table: "audit_events", column: "action") }
        guard let parsedKind = TargetKind(rawValue: targetKind) else { throw StoreCorruption(table: "audit_events", column: "target_kind") }
        let parsedDetail: [String: String]
        do { parsedDetail = try JSONDecoder().decode([String: String].self, from: Data(detail.utf8)) } catch {
            throw StoreCorruption(table: "audit_events", column: "detail")
        }
        self.init(
            seq: seq,
            at: at,
            actor: actor,
            requestID: requestID,
            action: parsedAction,
            targetKind: parsedKind,
            target: target,
            detail: parsedDetail
        )
    }
}
