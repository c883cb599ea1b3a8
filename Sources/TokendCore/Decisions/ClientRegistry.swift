import Foundation
import Logging

/// Client management for the admin API.
public struct ClientRegistry: Sendable {
    public static let maximumIDLength = 128
    private let store: any ClientStore
    private let authenticator: ClientAuthenticator?
    private let revoker: Revoker?
    private let now: Now
    private let logger: Logger

    /// With a `revoker`, deleting a client first revokes every token issued to it.
    public init(
        store: any ClientStore,
        authenticator: ClientAuthenticator? = nil,
        revoker: Revoker? = nil,
        now: @escaping Now = { Date() },
        logger: Logger = Logger(label: "tokend.clients")
    ) {
        self.store = store
        self.authenticator = authenticator
        self.revoker = revoker
        self.now = now
        self.logger = logger
    }

    /// Registers a client and returns it with its secret, which is not kept and cannot be shown again.
    /// With an `audit` context, the creation is recorded in the audit trail (so for every method here).
    public func create(
        id: String,
        roles: [String],
        audiences: [String],
        scopes: [String] = [],
        audit: AuditContext? = nil
    ) async throws -> (ClientRecord, secret: String) {
        try Self.validate(clientID: id)
        let parsedRoles = try Self.roles(roles)
        try Validation.audiences(audiences)
        let scopes = try Self.scopes(scopes)
        let secret = ClientSecret.generate()
        let hashed = ClientSecret.hash(secret)
        let record = ClientRecord(
            id: id,
            roles: parsedRoles,
            audiences: audiences,
            scopes: scopes,
            secretSalt: hashed.salt,
            secretHash: hashed.hash,
            createdAt: now()
        )
        let event = audit?.event(.clientCreate, .client, id, detail: Self.attributes(record), at: record.createdAt)
        try await storeCall(logger, "creating a client") { try await store.createClient(record, audit: event) }
        event?.log(to: logger)
        return (record, secret)
    }

    /// Replaces the attributes given (`nil` keeps one as it is) and returns the client as stored.
    /// Takes effect on this replica at once; other replicas see it when their verified-credential
    /// cache entry for the client expires (`ClientAuthenticator`).
    public func update(
        id: String,
        roles: [String]?,
        audiences: [String]?,
        scopes: [String]?,
        audit: AuditContext? = nil
    ) async throws -> ClientRecord {
        guard var client = try await storeCall(logger, "reading a client", { try await store.client(id: id) }) else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        if let roles { client.roles = try Self.roles(roles) }
        if let audiences {
            try Validation.audiences(audiences)
            client.audiences = audiences
        }
        if let scopes { client.scopes = try Self.scopes(scopes) }
        let updated = client
        let event = audit?.event(.clientUpdate, .client, id, detail: Self.attributes(client), at: now())
        guard try await storeCall(logger, "updating a client", { try await store.updateClient(updated, audit: event) }) else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        authenticator?.invalidate(clientID: id)
        logger.info("client updated", metadata: ["client_id": "\(id)", "roles": "\(client.sortedRoles)"])
        event?.log(to: logger)
        return client
    }

    /// A client's attributes as an audit event's detail (space-separated lists; never the secret).
    static func attributes(_ client: ClientRecord) -> [String: String] {
        [
            "roles": client.sortedRoles.joined(separator: " "),
            "audiences": client.audiences.joined(separator: " "),
            "scopes": client.scopes.joined(separator: " "),
        ]
    }

    static func roles(_ names: [String]) throws -> Set<Role> {
        var roles = Set<Role>()
        for name in names {
            guard let role = Role(rawValue: name) else {
                throw TokendError.invalidRequest("unknown role \"\(name.prefix(32))\" (roles: \(Role.names))")
            }
            roles.insert(role)
        }
        return roles
    }

    /// Allowed scopes: RFC 6749 §3.3 scope tokens, each element possibly several space-separated
    /// ones (`--scope "a b"`), without repeats, at most 64.
    static func scopes(_ values: [String]) throws -> [String] {
        var scopes: [String] = []
        for value in values where !value.isEmpty {
            try Validation.scope(value)
            for token in value.split(separator: " ").map(String.init) where !scopes.contains(token) { scopes.append(token) }
        }
        guard scopes.count <= 64 else { throw TokendError.invalidRequest("at most 64 allowed scopes") }
        return scopes
    }

    public func list() async throws -> [ClientRecord] {
        try await storeCall(logger, "listing clients") { try await store.listClients() }.sorted { $0.id < $1.id }
    }

    /// Deletes the client after revoking its tokens: a deleted client's tokens must not stay active.
    /// Audited as two events: the revocation, then the deletion.
    public func delete(id: String, audit: AuditContext? = nil) async throws {
        guard try await storeCall(logger, "reading a client", { try await store.client(id: id) }) != nil else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        if let revoker { _ = try await revoker.revoke(.client(id), reason: "client deleted", audit: audit) }
        let event = audit?.event(.clientDelete, .client, id, at: now())
        guard try await storeCall(logger, "deleting a client", { try await store.deleteClient(id: id, audit: event) }) else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        authenticator?.invalidate(clientID: id)
        event?.log(to: logger)
    }

    /// Replaces the client's secret; the old one stops working at once on this replica.
    public func rotateSecret(id: String, audit: AuditContext? = nil) async throws -> String {
        let secret = ClientSecret.generate()
        let hashed = ClientSecret.hash(secret)
        let event = audit?.event(.clientRotateSecret, .client, id, at: now())
        guard
            try await storeCall(logger, "rotating a secret", {
                try await store.updateClientSecret(id: id, salt: hashed.salt, hash: hashed.hash, audit: event)
            })
        else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        authenticator?.invalidate(clientID: id)
        event?.log(to: logger)
        return secret
    }

    /// 1–128 characters from `A–Z a–z 0–9 . _ ~ - : @`.
    public static func validate(clientID: String) throws {
        let ok =
            !clientID.isEmpty && clientID.utf8.count <= maximumIDLength
            && clientID.utf8.allSatisfy { c in
                Base64URL.isAlphabet(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "~") || c == UInt8(ascii: ":") || c == UInt8(ascii: "@")
            }
        guard ok else {
            throw TokendError.invalidRequest("client_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ - : @")
        }
    }
}
