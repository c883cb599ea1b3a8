/// The connection pool behind a store, as `/metrics` shows it (`tokend_store_pool_*`).
public struct StorePoolFigures: Sendable, Equatable {
    /// The pool's configured ceiling.
    public var maxConnections: Int
    /// Connections open or being opened.
    public var openConnections: Int
    /// Connection attempts since start, and those that failed.
    public var connectAttempts: Int64
    public var connectFailures: Int64
    /// Token lookups coalesced into `= ANY($1)` queries: queries sent, and lookups they answered.
    public var lookupBatches: Int64
    public var batchedLookups: Int64
    /// Those queries by their number of keys.
    public var lookupBatchSizes: LookupBatchSizes

    public init(
        maxConnections: Int,
        openConnections: Int,
        connectAttempts: Int64,
        connectFailures: Int64,
        lookupBatches: Int64,
        batchedLookups: Int64,
        lookupBatchSizes: LookupBatchSizes = LookupBatchSizes()
    ) {
        self.maxConnections = maxConnections
        self.openConnections = openConnections
        self.connectAttempts = connectAttempts
        self.connectFailures = connectFailures
        self.lookupBatches = lookupBatches
        self.batchedLookups = batchedLookups
        self.lookupBatchSizes = lookupBatchSizes
    }
}

/// A store that can report its connection pool.
public protocol StorePoolReporting: Sendable {
    var poolFigures: StorePoolFigures { get }
}
