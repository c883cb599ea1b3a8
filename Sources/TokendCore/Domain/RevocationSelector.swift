/// Which tokens a revocation covers.
public enum RevocationSelector: Sendable, Equatable {
    /// One token. Revoking a refresh token revokes its whole grant (RFC 7009 §2.1).
    case token(TokenHash)
    /// The token with this `jti`, with the same cascade as `.token`.
    case jti(String)
    /// Every token of this subject issued up to the revocation.
    case subject(String)
    /// Every token issued to this client up to the revocation.
    case client(String)
    /// Every token of this grant.
    case grant(String)

    /// The kind of log entry this selector names (a refresh token's revokes its grant instead).
    public var kind: RevocationEntry.Kind {
        switch self {
        case .token: return .token
        case .jti: return .jti
        case .subject: return .subject
        case .client: return .client
        case .grant: return .grant
        }
    }
}
