import Foundation

/// A replica's memory: cached token records and what it knows of the revocation log.
public struct ReplicaMemory: Sendable {
    public let cache: TokenCache
    public let view: RevocationView
    /// How long after the last confirmed sync memory may still answer (`TOKEND_MAX_STALENESS`).
    public let maxStaleness: TimeInterval

    public init(cache: TokenCache, view: RevocationView, maxStaleness: TimeInterval) {
        self.cache = cache
        self.view = view
        self.maxStaleness = maxStaleness
    }
}
