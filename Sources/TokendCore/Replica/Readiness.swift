/// Readiness of one replica, as `/readyz` reports it.
public struct Readiness: Sendable, Equatable {
    public var ready: Bool
    public var reason: String?
    /// With a hot standby: how far its replay is behind the primary, in seconds (`nil`: no
    /// standby, or not yet known).
    public var standbyReplayLagSeconds: Double?
    /// With an upstream (`TOKEND_REVOCATION_UPSTREAM`): how far this replica's view is behind the
    /// log's head through it, in seconds (`nil`: no upstream, or not yet known).
    public var upstreamLagSeconds: Double?

    public init(ready: Bool, reason: String? = nil, standbyReplayLagSeconds: Double? = nil, upstreamLagSeconds: Double? = nil) {
        self.ready = ready
        self.reason = reason
        self.standbyReplayLagSeconds = standbyReplayLagSeconds
        self.upstreamLagSeconds = upstreamLagSeconds
    }
}
