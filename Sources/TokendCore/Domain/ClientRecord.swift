import Foundation

/// What a registered client may do. Every client may revoke tokens issued to itself.
public enum Role: String, Sendable, Hashable, CaseIterable, Codable {
    /// Resource servers: RFC 7662 introspection.
    case introspect
    /// The authorization server: minting tokens.
    case issue
    /// May revoke any client's tokens (RFC 7009 §2.1 otherwise limits a client to its own).
    case revoke
    /// May obtain tokens for itself at `/oauth2/token` (RFC 6749 §4.4), within its allowed scopes.
    case clientCredentials = "client_credentials"

    /// Every role name, for error messages and help.
    public static let names = allCases.map(\.rawValue).joined(separator: ", ")
}

/// A registered OAuth client. The secret exists only as a salted hash.
public struct ClientRecord: Sendable, Equatable {
    public var id: String
    public var roles: Set<Role>
    /// When non-empty, the client sees as active only tokens whose `aud` contains one of these.
    public var audiences: [String]
    /// What the client may request for itself with `client_credentials` (RFC 6749 §3.3 scope tokens).
    public var scopes: [String]
    public var secretSalt: [UInt8]
    public var secretHash: [UInt8]
    public var createdAt: Date

    public init(
        id: String,
        roles: Set<Role>,
        audiences: [String],
        scopes: [String] = [],
        secretSalt: [UInt8],
        secretHash: [UInt8],
        createdAt: Date
    ) {
        self.id = id
        self.roles = roles
        self.audiences = audiences
        self.scopes = scopes
        self.secretSalt = secretSalt
        self.secretHash = secretHash
        self.createdAt = createdAt
    }

    /// Roles in a stable order, for storage and display.
    public var sortedRoles: [String] { roles.map(\.rawValue).sorted() }
}
