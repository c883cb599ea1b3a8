import Logging
import Synchronization
import TokendCore

/// Follows a `PostgresClient`'s connection pool through the events it logs.
///
/// postgres-nio reports pool events only to its background logger: "Creating new connection"
/// (debug), "Connection creation failed" (info), "Connection closed" (debug); it reports no lease
/// events. This observer is that logger: it counts the events and passes each line on to the real
/// handler only at the level the operator chose, so nothing extra is printed. Open connections are
/// attempts − failures − closes (an attempt in progress counts as open). `OperationsTests` pins the
/// event names to the postgres-nio version in use.
public final class PostgresPoolObserver: Sendable {
    public let maxConnections: Int
    private let attempts = Atomic<Int64>(0)
    private let failures = Atomic<Int64>(0)
    private let closed = Atomic<Int64>(0)

    public init(maxConnections: Int) {
        self.maxConnections = maxConnections
    }

    /// A logger for `PostgresClient(backgroundLogger:)`: `base`'s handler, level and metadata, with
    /// this observer in front.
    public func backgroundLogger(wrapping base: Logger) -> Logger {
        Logger(label: base.label) { [self] _ in PoolObservingLogHandler(inner: base.handler, observer: self) }
    }

    func record(_ message: String) {
        switch message {
        case "Creating new connection": attempts.add(1, ordering: .relaxed)
        case "Connection creation failed": failures.add(1, ordering: .relaxed)
        case "Connection closed": closed.add(1, ordering: .relaxed)
        default: break
        }
    }

    /// The pool now; `batcher` adds the coalesced-lookup counts.
    func figures(batches: Int64, keys: Int64, sizes: LookupBatchSizes) -> StorePoolFigures {
        let attempts = attempts.load(ordering: .relaxed)
        let failures = failures.load(ordering: .relaxed)
        return StorePoolFigures(
            maxConnections: maxConnections,
            openConnections: Int(max(0, attempts - failures - closed.load(ordering: .relaxed))),
            connectAttempts: attempts,
            connectFailures: failures,
            lookupBatches: batches,
            batchedLookups: keys,
            lookupBatchSizes: sizes
        )
    }
}

/// Receives everything from debug up, counts the pool events, forwards what the inner handler's
/// level lets through.
struct PoolObservingLogHandler: LogHandler {
    var inner: any LogHandler
    let observer: PostgresPoolObserver

    var logLevel: Logger.Level {
        get { min(.debug, inner.logLevel) }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    func log(event: LogEvent) {
        observer.record(event.message.description)
        if event.level >= inner.logLevel { inner.log(event: event) }
    }
}
