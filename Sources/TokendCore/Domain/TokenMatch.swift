import Foundation

/// The tokens one `RevocationTransaction.markRevoked` call covers: exactly these, with no cascade.
public enum TokenMatch: Sendable, Equatable {
    case hash(TokenHash)
    case subject(String)
    case client(String)
    /// Every token of the grant; the grant itself is marked revoked too.
    case grant(String)
}

/// A token that `markRevoked` has just marked revoked.
public struct RevokedToken: Sendable, Equatable, Hashable {
    public var hash: TokenHash
    public var expiresAt: Date

    public init(hash: TokenHash, expiresAt: Date) {
        self.hash = hash
        self.expiresAt = expiresAt
    }
}
