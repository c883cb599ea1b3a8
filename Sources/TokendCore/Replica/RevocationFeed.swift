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
    public let broadcast = RevocationBroadcast()
    private let store: any TokenStore
    private let now: Now
    private let pollInterval: Duration
    private let logger: Logger
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    /// Entries per read of the log: large enough that a cold start over 1,000,000 live
    /// revocations takes a hundred round trips, not a thousand.
    public static let defaultPageSize = 10_000
    let pageSize: Int

    public init(
        store: any TokenStore,
        view: RevocationView,
        pollInterval: Duration = .seconds(1),
        now: @escaping Now = { Date() },
        logger: Logger,
        pageSize: Int = RevocationFeed.defaultPageSize
    ) {
        self.pageSize = max(1, pageSize)
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
    /// moment the read began (everything committed before then is in what was read).
    public func sync() async throws {
        let started = now()
        var page = try await store.revocations(after: view.watermark, limit: pageSize)
        if page.count == pageSize { await reserveForBacklog(after: page) }
        // A full page means there may be more: the next page is read while this one is applied.
        while page.count == pageSize, let last = page.last {
            async let next = store.revocations(after: last.seq, limit: pageSize)
            broadcast.publish(page)
            view.apply(page)
            page = try await next
        }
        broadcast.publish(page)
        view.apply(page)
        // Once per read, not per page: a cold start over a long log builds its filter once.
        view.refitFilter()
        view.markSynced(at: started)
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
