/// What the decisions report as they are made (Prometheus counters in the server).
public protocol DecisionMetrics: Sendable {
    /// One introspection answered for a client, by outcome and by where the answer came from.
    func introspected(_ outcome: IntrospectionOutcome, source: AnswerSource)
    /// A committed revocation and how many tokens it revoked.
    func revoked(count: Int64)
}

/// An introspection's outcome, as counted.
public enum IntrospectionOutcome: String, Sendable {
    case active, inactive, unavailable
}
