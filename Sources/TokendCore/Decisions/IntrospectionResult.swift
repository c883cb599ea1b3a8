/// The answer to "is this token active, and what does it carry?" (RFC 7662 §2.2).
public enum IntrospectionResult: Sendable, Equatable {
    /// Unknown, expired, not yet valid, revoked, malformed, too long, or outside the caller's
    /// audiences: RFC 7662 answers all of these with `{"active":false}` and nothing else.
    case inactive
    case active(TokenRecord)

    public var isActive: Bool {
        if case .active = self { return true }
        return false
    }
}

/// Where an answer came from.
public enum AnswerSource: String, Sendable {
    case memory
    case store
}
