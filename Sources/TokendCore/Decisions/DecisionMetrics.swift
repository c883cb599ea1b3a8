/// What the decisions report as they are made (Prometheus counters in the server).
public protocol DecisionMetrics: Sendable {
    /// One introspection answered for a client, by outcome and by where the answer came from.
    func introspected(_ outcome: IntrospectionOutcome, source: AnswerSource)
    /// A committed revocation and how many tokens it revoked.
    func revoked(count: Int64)
    /// A guess counted by the `GuessLimiter` (a failed authentication, a never-issued token).
    func guessCounted(_ kind: GuessLimiter.Kind)
    /// A request refused by the `GuessLimiter` with `tooManyRequests`.
    func guessRefused(_ kind: GuessLimiter.Kind)
    /// `/oauth2/token` answered: `outcome` is `granted`, `refused` or `reuse` (a spent refresh
    /// token came back and its grant was revoked).
    func tokenRequest(grantType: String, outcome: TokenRequestOutcome)
}

/// How a token request ended, as counted.
public enum TokenRequestOutcome: String, Sendable, CaseIterable {
    case granted, refused, reuse
}

/// An introspection's outcome, as counted.
public enum IntrospectionOutcome: String, Sendable {
    case active, inactive, unavailable
}

extension DecisionMetrics {
    public func guessCounted(_ kind: GuessLimiter.Kind) {}
    public func guessRefused(_ kind: GuessLimiter.Kind) {}
    public func tokenRequest(grantType: String, outcome: TokenRequestOutcome) {}
}
