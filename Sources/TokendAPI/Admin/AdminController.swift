import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf
import TokendCore
import TokendProto

/// `tokend.v1.AdminService` on the admin listener, behind `Authorization: Bearer $TOKEND_ADMIN_TOKEN`.
/// The caller is an operator: each method translates its message to one Core call. Every method
/// that changes something passes the caller as an `AuditContext` (actor `admin`, the request id),
/// which the store records in the action's own transaction.
struct AdminController: Sendable {
    let tokend: Tokend
    let adminToken: String

    func register(on router: Router<TokendRequestContext>) {
        let prefix = "/tokend.v1.AdminService/"
        unary(router, prefix + "CreateClient", Tokend_V1_CreateClientRequest.self) { m, audit in
            let (client, secret) = try await tokend.registry.create(
                id: m.clientID,
                roles: m.roles,
                audiences: m.audiences,
                scopes: m.scopes,
                audit: audit
            )
            var out = Tokend_V1_CreateClientResponse()
            out.clientID = client.id
            out.clientSecret = secret
            out.roles = client.sortedRoles
            out.audiences = client.audiences
            out.scopes = client.scopes
            return out
        }
        unary(router, prefix + "UpdateClient", Tokend_V1_UpdateClientRequest.self) { m, audit in
            let client = try await tokend.registry.update(
                id: m.clientID,
                roles: m.hasRoles ? m.roles.values : nil,
                audiences: m.hasAudiences ? m.audiences.values : nil,
                scopes: m.hasScopes ? m.scopes.values : nil,
                audit: audit
            )
            var out = Tokend_V1_UpdateClientResponse()
            out.client = Tokend_V1_Client(client)
            return out
        }
        unary(router, prefix + "ListSigningKeys", Tokend_V1_ListSigningKeysRequest.self) { _, _ in
            _ = try await tokend.signingKeys.current()  // a first start creates the first key
            var out = Tokend_V1_ListSigningKeysResponse()
            out.keys = try await tokend.signingKeys.list().map { k in
                var key = Tokend_V1_SigningKey()
                key.kid = k.kid
                key.alg = k.algorithm
                key.createdAt = Int64(k.createdAt.timeIntervalSince1970)
                key.retiresAt = k.retiresAt.map { Int64($0.timeIntervalSince1970) } ?? 0
                key.current = k.retiresAt == nil
                return key
            }
            return out
        }
        unary(router, prefix + "RotateSigningKey", Tokend_V1_RotateSigningKeyRequest.self) { _, audit in
            let (kid, previous) = try await tokend.signingKeys.rotate(audit: audit)
            var out = Tokend_V1_RotateSigningKeyResponse()
            out.kid = kid
            out.previousKid = previous ?? ""
            if let previous, let retired = try await tokend.signingKeys.list().first(where: { $0.kid == previous }) {
                out.previousRetiresAt = retired.retiresAt.map { Int64($0.timeIntervalSince1970) } ?? 0
            }
            return out
        }
        unary(router, prefix + "ListClients", Tokend_V1_ListClientsRequest.self) { _, _ in
            var out = Tokend_V1_ListClientsResponse()
            out.clients = try await tokend.registry.list().map(Tokend_V1_Client.init)
            return out
        }
        unary(router, prefix + "DeleteClient", Tokend_V1_DeleteClientRequest.self) { m, audit in
            try await tokend.registry.delete(id: m.clientID, audit: audit)
            return Tokend_V1_DeleteClientResponse()
        }
        unary(router, prefix + "RotateClientSecret", Tokend_V1_RotateClientSecretRequest.self) { m, audit in
            var out = Tokend_V1_RotateClientSecretResponse()
            out.clientID = m.clientID
            out.clientSecret = try await tokend.registry.rotateSecret(id: m.clientID, audit: audit)
            return out
        }
        unary(router, prefix + "IssueToken", Tokend_V1_IssueTokenRequest.self) { m, audit in
            Tokend_V1_IssueTokenResponse(try await tokend.issuer.issue(IssueRequest(m), audit: audit))
        }
        unary(router, prefix + "Introspect", Tokend_V1_IntrospectRequest.self) { m, _ in
            Tokend_V1_IntrospectResponse(try await tokend.introspector.introspectAsOperator(m.token.nonEmpty))
        }
        unary(router, prefix + "Revoke", Tokend_V1_AdminRevokeRequest.self) { m, audit in
            let selector: RevocationSelector
            switch m.selector {
            case .token(let token)?:
                guard OpaqueToken.isWellFormed(token) else {
                    // Not a token tokend issued: nothing to revoke.
                    return Tokend_V1_AdminRevokeResponse()
                }
                selector = .token(TokenHash(token: token))
            case .jti(let v)?: selector = .jti(v)
            case .subject(let v)?: selector = .subject(v)
            case .clientID(let v)?: selector = .client(v)
            case .grantID(let v)?: selector = .grant(v)
            case nil:
                throw TokendError.invalidRequest("give exactly one of token, jti, subject, client_id, grant_id")
            }
            let outcome = try await tokend.revoker.revoke(selector, reason: m.reason, audit: audit)
            var out = Tokend_V1_AdminRevokeResponse()
            out.revoked = outcome.revoked
            out.seq = outcome.seq
            return out
        }
        unary(router, prefix + "ListRevocations", Tokend_V1_ListRevocationsRequest.self) { m, _ in
            guard m.since >= 0, m.limit >= 0 else { throw TokendError.invalidRequest("since and limit must not be negative") }
            let limit = m.limit == 0 ? 100 : min(Int(m.limit), 1000)
            let (entries, head) = try await tokend.replica.revocationLog(after: m.since, limit: limit)
            var out = Tokend_V1_ListRevocationsResponse()
            out.entries = entries.map { e in
                var entry = Tokend_V1_RevocationEntry()
                entry.seq = e.seq
                entry.kind = e.kind.rawValue
                entry.value = e.value
                entry.reason = e.reason
                entry.revoked = e.revokedCount
                entry.createdAt = Int64(e.createdAt.timeIntervalSince1970)
                return entry
            }
            out.head = head
            return out
        }
        unary(router, prefix + "ListAuditEvents", Tokend_V1_ListAuditEventsRequest.self) { m, _ in
            guard m.since >= 0 else { throw TokendError.invalidRequest("since must not be negative") }
            let (events, next) = try await tokend.auditTrail.page(
                since: m.since == 0 ? nil : Date(timeIntervalSince1970: TimeInterval(m.since)),
                actor: m.actor.isEmpty ? nil : m.actor,
                after: m.afterSeq,
                pageSize: Int(m.pageSize)
            )
            var out = Tokend_V1_ListAuditEventsResponse()
            out.events = events.map(Tokend_V1_AuditEvent.init)
            out.nextAfterSeq = next
            return out
        }
        unary(router, prefix + "Status", Tokend_V1_StatusRequest.self) { _, _ in
            let status = try await tokend.replica.status()
            var out = Tokend_V1_StatusResponse()
            out.watermark = status.watermark
            out.head = status.head
            out.lagSeconds = status.lagSeconds
            out.cacheEntries = status.cacheEntries
            out.filterEntries = status.filterEntries
            out.store = tokend.replica.storeName
            out.version = TokendVersion.current
            out.cacheHitRatio = status.cacheHitRatio
            out.cacheBytes = status.cacheBytes
            out.feed = status.feed
            if let lag = status.standbyReplayLagSeconds { out.standbyReplayLagSeconds = lag }
            if let upstream = status.upstream {
                out.upstream = upstream.name
                out.upstreamConnected = upstream.connected
                out.upstreamLagSeconds = upstream.lagSeconds
            }
            out.filterBitsPerEntry = status.filterBitsPerEntry
            out.filterFalsePositives = status.filterFalsePositives
            return out
        }
    }

    private func unary<Input: Message, Output: Message>(
        _ router: Router<TokendRequestContext>,
        _ path: String,
        _ input: Input.Type,
        _ handler: @escaping @Sendable (Input, AuditContext) async throws -> Output
    ) {
        connectUnary(
            router,
            path,
            input,
            challenge: nil,
            authenticate: { [adminToken] request, context in
                try Self.authorize(request, adminToken: adminToken)
                return AuditContext(actor: Self.actor, requestID: context.id)
            },
            handler: handler
        )
    }

    /// The audit trail's actor for a caller authenticated by the admin token, the admin API's one
    /// credential.
    static let actor = "admin"

    /// `Authorization: Bearer <admin token>`, compared in constant time.
    static func authorize(_ request: Request, adminToken: String) throws {
        guard let header = request.headers[.authorization] else {
            throw TokendError(.unauthenticated, "admin token required (Authorization: Bearer)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !adminToken.isEmpty,
            constantTimeEqual(String(parts[1]).trimmingCharacters(in: .whitespaces), adminToken)
        else {
            throw TokendError(.unauthenticated, "invalid admin token")
        }
    }
}

extension Tokend_V1_AuditEvent {
    init(_ event: AuditEvent) {
        self.init()
        seq = event.seq
        at = Int64(event.at.timeIntervalSince1970.rounded(.down))
        actor = event.actor
        requestID = event.requestID
        action = event.action.rawValue
        targetKind = event.targetKind.rawValue
        target = event.target
        detail = event.detail
    }
}
