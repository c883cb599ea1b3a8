import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf
import TokendCore
import TokendProto

/// `tokend.v1.AdminService` on the admin listener, behind `Authorization: Bearer $TOKEND_ADMIN_TOKEN`.
struct AdminController: Sendable {
    let services: TokendServices

    func register(on router: Router<TokendRequestContext>) {
        let prefix = "/tokend.v1.AdminService/"
        unary(router, prefix + "CreateClient", Tokend_V1_CreateClientRequest.self) { m in
            let (client, secret) = try await services.registry.create(id: m.clientID, roles: m.roles, audiences: m.audiences)
            var out = Tokend_V1_CreateClientResponse()
            out.clientID = client.id
            out.clientSecret = secret
            out.roles = client.sortedRoles
            out.audiences = client.audiences
            return out
        }
        unary(router, prefix + "ListClients", Tokend_V1_ListClientsRequest.self) { _ in
            var out = Tokend_V1_ListClientsResponse()
            out.clients = try await services.registry.list().map { c in
                var client = Tokend_V1_Client()
                client.clientID = c.id
                client.roles = c.sortedRoles
                client.audiences = c.audiences
                client.createdAt = Int64(c.createdAt.timeIntervalSince1970)
                return client
            }
            return out
        }
        unary(router, prefix + "DeleteClient", Tokend_V1_DeleteClientRequest.self) { m in
            try await services.registry.delete(id: m.clientID)
            return Tokend_V1_DeleteClientResponse()
        }
        unary(router, prefix + "RotateClientSecret", Tokend_V1_RotateClientSecretRequest.self) { m in
            var out = Tokend_V1_RotateClientSecretResponse()
            out.clientID = m.clientID
            out.clientSecret = try await services.registry.rotateSecret(id: m.clientID)
            return out
        }
        unary(router, prefix + "IssueToken", Tokend_V1_IssueTokenRequest.self) { m in
            guard !m.clientID.isEmpty else { throw ConnectError(.invalidArgument, "client_id is required") }
            guard m.grantID.isEmpty else {
                throw ConnectError(.invalidArgument, "issuing under an existing grant_id is not supported; omit grant_id")
            }
            return Tokend_V1_IssueTokenResponse(try await services.issuer.issue(IssueRequest(m, clientID: m.clientID)))
        }
        unary(router, prefix + "Introspect", Tokend_V1_IntrospectRequest.self) { m in
            guard !m.token.isEmpty else { throw ConnectError(.invalidArgument, "token is required") }
            return Tokend_V1_IntrospectResponse(try await services.introspector.introspect(token: m.token, audiences: []))
        }
        unary(router, prefix + "Revoke", Tokend_V1_AdminRevokeRequest.self) { m in
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
                throw ConnectError(.invalidArgument, "give exactly one of token, jti, subject, client_id, grant_id")
            }
            let outcome = try await services.revoker.revoke(selector, reason: m.reason)
            services.metrics.revoked(outcome.revoked)
            var out = Tokend_V1_AdminRevokeResponse()
            out.revoked = outcome.revoked
            out.seq = outcome.seq
            return out
        }
        unary(router, prefix + "ListRevocations", Tokend_V1_ListRevocationsRequest.self) { m in
            guard m.since >= 0, m.limit >= 0 else { throw ConnectError(.invalidArgument, "since and limit must not be negative") }
            let limit = m.limit == 0 ? 100 : min(Int(m.limit), 1000)
            var out = Tokend_V1_ListRevocationsResponse()
            do {
                out.entries = try await services.store.revocations(after: m.since, limit: limit).map { e in
                    var entry = Tokend_V1_RevocationEntry()
                    entry.seq = e.seq
                    entry.kind = e.kind.rawValue
                    entry.value = e.value
                    entry.reason = e.reason
                    entry.revoked = e.revokedCount
                    entry.createdAt = Int64(e.createdAt.timeIntervalSince1970)
                    return entry
                }
                out.head = try await services.store.revocationHead()
            } catch {
                throw TokendError.unavailable
            }
            return out
        }
        unary(router, prefix + "Status", Tokend_V1_StatusRequest.self) { _ in
            let status: ReplicaStatus
            do { status = try await services.status() } catch { throw TokendError.unavailable }
            var out = Tokend_V1_StatusResponse()
            out.watermark = status.watermark
            out.head = status.head
            out.lagSeconds = status.lagSeconds
            out.cacheEntries = status.cacheEntries
            out.filterEntries = status.filterEntries
            out.store = services.store.name
            out.version = TokendVersion.current
            out.cacheHitRatio = status.cacheHitRatio
            out.filterBitsPerEntry = status.filterBitsPerEntry
            out.filterFalsePositives = status.filterFalsePositives
            return out
        }
    }

    private func unary<Input: Message, Output: Message>(
        _ router: Router<TokendRequestContext>, _ path: String, _ input: Input.Type,
        _ handler: @escaping @Sendable (Input) async throws -> Output
    ) {
        let adminToken = services.adminToken
        connectUnary(router, path, input, authenticate: { request, _ in try Self.authorize(request, adminToken: adminToken) }) { message, _ in
            try await handler(message)
        }
    }

    /// `Authorization: Bearer <admin token>`, compared in constant time.
    static func authorize(_ request: Request, adminToken: String) throws {
        guard let header = request.headers[.authorization] else {
            throw ConnectError(.unauthenticated, "admin token required (Authorization: Bearer)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !adminToken.isEmpty,
              constantTimeEqual(String(parts[1]).trimmingCharacters(in: .whitespaces), adminToken)
        else {
            throw ConnectError(.unauthenticated, "invalid admin token")
        }
    }
}

public enum TokendVersion {
    public static let current = "0.1.0"
}
