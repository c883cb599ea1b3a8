import Foundation
import Logging
import Synchronization

/// The current time. Injected everywhere so that tests can move a manual clock instead of sleeping.
public typealias Now = @Sendable () -> Date

/// Authenticates OAuth clients (RFC 6749 §2.3.1) against the client store.
///
/// Client records are cached for `recordTTL` so that the request path does not query the store on
/// every call; a deletion or secret rotation made through this replica takes effect at once, one
/// made through another replica within `recordTTL`. Verification itself is one HMAC-SHA-256 of
/// the presented secret, compared in constant time with the stored hash; the HMAC key schedule
/// of a cached client is computed once (`ClientSecret.Verifier`), not per request.
public final class ClientAuthenticator: Sendable {
    private let store: any ClientStore
    private let now: Now
    private let recordTTL: TimeInterval
    private struct Cached {
        let record: ClientRecord
        let verifier: ClientSecret.Verifier
        let until: Date
    }
    private let cache = Mutex<[String: Cached]>([:])
    /// Checked for an unknown client, so that timing does not tell which ids exist.
    private static let unknownClient = ClientSecret.Verifier(salt: [UInt8](repeating: 0, count: 16), hash: [UInt8](repeating: 0, count: 32))

    public init(store: any ClientStore, now: @escaping Now = { Date() }, recordTTL: TimeInterval = 2) {
        self.store = store
        self.now = now
        self.recordTTL = recordTTL
    }

    /// The client, if `secret` is its current secret; `TokendError.unauthenticated` otherwise.
    public func authenticate(clientID: String, secret: String) async throws -> ClientRecord {
        guard !clientID.isEmpty, clientID.utf8.count <= ClientRegistry.maximumIDLength, secret.utf8.count <= 512 else {
            throw Self.failure
        }
        let record: ClientRecord?
        let verifier: ClientSecret.Verifier
        let current = now()
        if let cached = cache.withLock({ $0[clientID] }), cached.until > current {
            record = cached.record
            verifier = cached.verifier
        } else {
            do {
                record = try await store.client(id: clientID)
            } catch {
                throw TokendError.unavailable
            }
            if let record {
                let made = ClientSecret.Verifier(salt: record.secretSalt, hash: record.secretHash)
                verifier = made
                cache.withLock { cache in
                    if cache.count > 10_000 { cache.removeAll() }
                    cache[clientID] = Cached(record: record, verifier: made, until: current.addingTimeInterval(recordTTL))
                }
            } else {
                verifier = Self.unknownClient
            }
        }
        // Verify even for an unknown client so that timing does not tell which ids exist.
        guard verifier.matches(secret), let record else { throw Self.failure }
        return record
    }

    private static let failure = TokendError(.unauthenticated, "client authentication failed")

    /// Forgets a cached client after this replica changed or deleted it.
    public func invalidate(clientID: String) {
        _ = cache.withLock { $0.removeValue(forKey: clientID) }
    }
}

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
        store: any ClientStore, authenticator: ClientAuthenticator? = nil, revoker: Revoker? = nil, now: @escaping Now = { Date() },
        logger: Logger = Logger(label: "tokend.clients")
    ) {
        self.store = store
        self.authenticator = authenticator
        self.revoker = revoker
        self.now = now
        self.logger = logger
    }

    /// Registers a client and returns it with its secret, which is not kept and cannot be shown again.
    public func create(id: String, roles: [String], audiences: [String]) async throws -> (ClientRecord, secret: String) {
        try Self.validate(clientID: id)
        var parsedRoles = Set<Role>()
        for name in roles {
            guard let role = Role(rawValue: name) else {
                throw TokendError.invalidRequest("unknown role \"\(name.prefix(32))\" (roles: introspect, issue, revoke)")
            }
            parsedRoles.insert(role)
        }
        try Validation.audiences(audiences)
        let secret = ClientSecret.generate()
        let hashed = ClientSecret.hash(secret)
        let record = ClientRecord(
            id: id, roles: parsedRoles, audiences: audiences, secretSalt: hashed.salt,
            secretHash: hashed.hash, createdAt: now()
        )
        try await storeCall(logger, "creating a client") { try await store.createClient(record) }
        return (record, secret)
    }

    public func list() async throws -> [ClientRecord] {
        try await storeCall(logger, "listing clients") { try await store.listClients() }.sorted { $0.id < $1.id }
    }

    /// Deletes the client after revoking its tokens: a deleted client's tokens must not stay active.
    public func delete(id: String) async throws {
        guard try await storeCall(logger, "reading a client", { try await store.client(id: id) }) != nil else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        if let revoker { _ = try await revoker.revoke(.client(id), reason: "client deleted") }
        guard try await storeCall(logger, "deleting a client", { try await store.deleteClient(id: id) }) else { throw TokendError.notFound("no client \"\(id.prefix(128))\"") }
        authenticator?.invalidate(clientID: id)
    }

    /// Replaces the client's secret; the old one stops working at once on this replica.
    public func rotateSecret(id: String) async throws -> String {
        let secret = ClientSecret.generate()
        let hashed = ClientSecret.hash(secret)
        guard try await storeCall(logger, "rotating a secret", { try await store.updateClientSecret(id: id, salt: hashed.salt, hash: hashed.hash) }) else {
            throw TokendError.notFound("no client \"\(id.prefix(128))\"")
        }
        authenticator?.invalidate(clientID: id)
        return secret
    }

    /// 1–128 characters from `A–Z a–z 0–9 . _ ~ - : @`.
    public static func validate(clientID: String) throws {
        let ok = !clientID.isEmpty && clientID.utf8.count <= maximumIDLength && clientID.utf8.allSatisfy { c in
            Base64URL.isAlphabet(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "~") || c == UInt8(ascii: ":") || c == UInt8(ascii: "@")
        }
        guard ok else {
            throw TokendError.invalidRequest("client_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ - : @")
        }
    }
}

/// Field checks shared by issuance and client registration.
public enum Validation {
    public static let maximumFieldLength = 1024

    public static func audiences(_ audiences: [String]) throws {
        guard audiences.count <= 32 else { throw TokendError.invalidRequest("at most 32 audiences") }
        for audience in audiences {
            let printable = !audience.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F || $0.properties.isWhitespace }
            guard !audience.isEmpty, audience.utf8.count <= 512, printable else {
                throw TokendError.invalidRequest("an audience must be 1-512 characters without spaces or control characters")
            }
        }
    }

    /// RFC 6749 §3.3: space-separated scope tokens of %x21 / %x23-5B / %x5D-7E.
    public static func scope(_ scope: String) throws {
        guard scope.utf8.count <= maximumFieldLength else { throw TokendError.invalidRequest("scope is too long") }
        for token in scope.split(separator: " ", omittingEmptySubsequences: false) {
            let ok = !token.isEmpty && token.utf8.allSatisfy { c in
                c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
            }
            guard ok else { throw TokendError.invalidRequest("scope must be space-separated RFC 6749 scope tokens") }
        }
    }

    public static func text(_ value: String, field: String) throws {
        guard value.utf8.count <= maximumFieldLength else { throw TokendError.invalidRequest("\(field) is too long") }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw TokendError.invalidRequest("\(field) contains control characters")
        }
    }
}
