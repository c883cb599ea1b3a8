import Foundation
import Logging

/// Keeps a replica's `RevocationView` in step with the store's revocation log.
///
/// The log is the truth. The feed reads it after the view's watermark at start, on every wake-up
/// (a PostgreSQL NOTIFY, this replica's own revocation, a reconnect) and at least every
/// `pollInterval`, so a lost NOTIFY delays a revocation by one poll at most. Log appends are
/// serialised by the store so that sequence order is commit order (`RevocationTransaction.append`):
/// reading "everything after the watermark" never skips an entry that committed late.
/// Each complete read marks the view synced; answers from memory stop `maxStaleness` after the
/// last one.
public final class RevocationFeed: Sendable {
    public let view: RevocationView
    /// What the feed reads, for `Watch` subscribers; published before it is applied to `view`.
    public let broadcast: RevocationBroadcast
    let store: any TokenStore
    let now: Now
    private let pollInterval: Duration
    let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// Where `sync()` reads the log when not the store itself (a hot standby, `Standby.readLog`).
    private let reader: LogReader?
    /// Entries per read of the log: large enough that a cold start over 1,000,000 live
    /// revocations takes a hundred round trips, not a thousand.
    public static let defaultPageSize = 10_000
    let pageSize: Int

    /// Reads a page of the log after a sequence number; returns it with the moment it is complete
    /// as of (`nil`: not confirmed, so the read applies its entries but does not mark the view synced).
    public typealias LogReader = @Sendable (_ after: Int64, _ limit: Int) async throws -> (entries: [RevocationEntry], completeAsOf: Date?)

    public init(
        store: any TokenStore,
        view: RevocationView,
        pollInterval: Duration = .seconds(1),
        now: @escaping Now = { Date() },
        logger: Logger,
        pageSize: Int = RevocationFeed.defaultPageSize,
        reader: LogReader? = nil,
        watchBuffer: Int = RevocationBroadcast.defaultBufferLimit
    ) {
        self.broadcast = RevocationBroadcast(bufferLimit: watchBuffer)
        self.pageSize = max(1, pageSize)
        self.reader = reader
        self.store = store
        self.view = view
        self.pollInterval = pollInterval
        self.now = now
        self.logger = logger
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks the feed to read the log now. Wake-ups that arrive during a read coalesce into one more read.
    public func wakeUp() {
        wakeupContinuation.yield()
    }

    /// Reads the whole log after the watermark and applies it; marks the view synced as of the
    /// moment the read is complete as of: for the store, when the read began (everything committed
    /// before then is in what was read); for a standby, what it had provably replayed.
    /// `fromStore`: read the store even when the feed polls a standby (a replica's own revocation
    /// must be in its memory before it is acknowledged, whatever the standby has replayed).
    public func sync(fromStore: Bool = false) async throws {
        let read: LogReader
        if let reader, !fromStore {
            read = reader
        } else {
            read = { [store, now] after, limit in
                let started = now()
                return (try await store.revocations(after: after, limit: limit), started)
            }
        }
        var (page, completeAsOf) = try await read(view.watermark, pageSize)
        if page.count == pageSize { await reserveForBacklog(after: page) }
        // A full page means there may be more: the next page is read while this one is applied.
        while page.count == pageSize, let last = page.last {
            async let next = read(last.seq, pageSize)
            broadcast.publish(page)
            view.apply(page)
            let (entries, asOf) = try await next
            page = entries
            // Complete as of the earliest page's moment; not at all if one page was not confirmed.
            completeAsOf = asOf.flatMap { asOf in completeAsOf.map { min($0, asOf) } }
        }
        broadcast.publish(page)
        view.apply(page)
        // Once per read, not per page: a cold start over a long log builds its filter once.
        view.refitFilter()
        if let completeAsOf { view.markSynced(at: completeAsOf) }
    }

    /// A full first page means a backlog (a cold start, a long disconnection): estimate how many
    /// hashes it holds from this page's density in sequence numbers and the log's head, so that
    /// the exact set is sized once instead of doubling its way there. The log's sequence has gaps
    /// (collected entries), which the density accounts for; a failing head query only skips this.
    private func reserveForBacklog(after page: [RevocationEntry]) async {
        guard let first = page.first, let last = page.last, let head = try? await store.revocationHead(), head > last.seq else { return }
        let hashes = page.reduce(0) { $0 + $1.tokenHashes.count }
        let density = Double(hashes) / Double(last.seq - first.seq + 1)
        let estimate = Double(hashes) + Double(head - last.seq) * density * 1.05
        view.reserveCapacity(additional: Int(min(estimate, 8_000_000)))
    }

    /// Syncs on every wake-up and every `pollInterval` until cancelled; compacts expired entries
    /// once a minute. Read failures are logged and retried on the next wake-up or poll.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [wakeupContinuation, pollInterval] in
                while !Task.isCancelled {
                    wakeupContinuation.yield()
                    do { try await Task.sleep(for: pollInterval) } catch { break }
                }
            }
            var lastCompaction = now()
            var failing = false
            for await _ in wakeups {
                do {
                    try await sync()
                    if failing { logger.notice("revocation log readable again") }
                    failing = false
                } catch {
                    if !failing {
                        logger.warning(
                            "reading the revocation log failed; answers leave memory after TOKEND_MAX_STALENESS",
                            metadata: ["error_type": "\(String(reflecting: type(of: error)))"]
                        )
                    }
                    failing = true
                }
                if now().timeIntervalSince(lastCompaction) > 60 {
                    view.compact(now: now())
                    lastCompaction = now()
                }
            }
            group.cancelAll()
        }
    }
}
