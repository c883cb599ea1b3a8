/// Readiness of one replica, as `/readyz` reports it.
public struct Readiness: Sendable, Equatable {
    public var ready: Bool
    public var reason: String?

    public init(ready: Bool, reason: String? = nil) {
        self.ready = ready
        self.reason = reason
    }
}
