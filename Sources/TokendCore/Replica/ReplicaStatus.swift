/// This replica's revocation figures, as `AdminService/Status` reports them.
public struct ReplicaStatus: Sendable {
    public var watermark: Int64
    public var head: Int64
    public var lagSeconds: Double
    public var cacheEntries: Int64
    public var filterEntries: Int64
    public var cacheHitRatio: Double = 0
    /// The cache's estimate of the bytes it holds (`TokenCache.bytes`).
    public var cacheBytes: Int64 = 0
    public var filterBitsPerEntry: Double = 0
    public var filterFalsePositives: Int64 = 0
    /// How this replica learns of revocations (`Replica.feedKind`).
    public var feed = "none"
    /// The standby's replay lag in seconds; -1 when unknown, `nil` without a standby.
    public var standbyReplayLagSeconds: Double?
    /// The upstream this replica follows, `nil` when none.
    public var upstream: Upstream?

    public struct Upstream: Sendable, Equatable {
        /// `scheme://client_id@host:port`.
        public var name: String
        public var connected: Bool
        /// How far this replica's view is behind the log's head through this hop (-1: unknown).
        public var lagSeconds: Double
    }

    public init(watermark: Int64, head: Int64, lagSeconds: Double, cacheEntries: Int64, filterEntries: Int64) {
        self.watermark = watermark
        self.head = head
        self.lagSeconds = lagSeconds
        self.cacheEntries = cacheEntries
        self.filterEntries = filterEntries
    }
}
