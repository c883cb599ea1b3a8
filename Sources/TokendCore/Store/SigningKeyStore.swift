import Foundation

/// One RFC 9701 signing key as the store keeps it. The private key is raw P-256 scalar bytes;
/// it leaves the store only to be loaded by a replica, and never reaches a log.
public struct StoredSigningKey: Sendable, Equatable {
    public var kid: String
    /// The JWS `alg`: `ES256`.
    public var algorithm: String
    public var privateKey: [UInt8]
    public var createdAt: Date
    /// `nil` for the current key; a rotated-out key is still published until then.
    public var retiresAt: Date?

    public init(kid: String, algorithm: String, privateKey: [UInt8], createdAt: Date, retiresAt: Date?) {
        self.kid = kid
        self.algorithm = algorithm
        self.privateKey = privateKey
        self.createdAt = createdAt
        self.retiresAt = retiresAt
    }
}

/// The replica set's signing keys, shared by every replica through the store. At most one key is
/// current (no `retiresAt`) at any time, whatever runs concurrently.
public protocol SigningKeyStore: Sendable {
    /// Every stored key, the current one (if any) first, then by `createdAt`, newest first.
    func signingKeys() async throws -> [StoredSigningKey]
    /// Stores `key` as the current key unless a current key exists already; `false` then (the
    /// caller reads the one that won). Concurrent first starts create exactly one current key.
    func insertFirstSigningKey(_ key: StoredSigningKey) async throws -> Bool
    /// Makes `key` current in one transaction: the current key (if any) retires at `retiring`,
    /// keys retired before `key.createdAt` are deleted, and every replica is told (PostgreSQL:
    /// a NOTIFY on the revocation channel with payload `keys`), and `audit` is appended. Serialised
    /// against concurrent rotations.
    func rotateSigningKey(to key: StoredSigningKey, retiring: Date, audit: AuditEvent?) async throws
}
