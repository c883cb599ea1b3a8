import Synchronization

/// The revocation log entries a replica's feed has read, handed to every `Watch` subscriber in
/// `seq` order as the feed reads them.
///
/// The feed publishes each page it read before it applies it to the view, so every entry at or
/// below the view's watermark has been published, and pages that overlap (a sync for the
/// replica's own revocation racing the periodic one) are published once: `publish` drops what is
/// at or below `watermark`. Each subscriber has a bounded buffer; one that falls further behind is
/// cut off (`Subscription.overflowed`) instead of growing the replica's memory.
public final class RevocationBroadcast: Sendable {
    public static let defaultBufferLimit = 16_384

    private struct State {
        var watermark: Int64 = 0
        var nextID: UInt64 = 0
        var subscribers: [UInt64: Subscriber] = [:]
        var cutOff: Int64 = 0
    }

    /// What `/metrics` reports: subscribers now, and those cut off for falling behind so far.
    public struct Figures: Sendable {
        public var subscribers: Int
        public var cutOff: Int64
    }

    /// Why a subscription's stream ended early.
    public enum EndReason: Sendable, Equatable {
        /// The subscriber fell `bufferLimit` entries behind.
        case overflow
        /// Its watcher ended it (the replica went stale, or drains), with that error.
        case ended(TokendError)
        /// The caller went away (its RPC was cancelled, its connection closed).
        case callerGone
    }

    fileprivate final class Subscriber: Sendable {
        let continuation: AsyncStream<RevocationEntry>.Continuation
        let reason = Mutex<EndReason?>(nil)
        init(_ continuation: AsyncStream<RevocationEntry>.Continuation) { self.continuation = continuation }

        func end(_ why: EndReason) {
            reason.withLock { if $0 == nil { $0 = why } }
            continuation.finish()
        }
    }

    /// Live entries for one subscriber, after `watermark` (the broadcast's when it subscribed).
    public struct Subscription: Sendable {
        public let entries: AsyncStream<RevocationEntry>
        /// Every entry at or below this was published before the subscription began: read those
        /// from the store.
        public let watermark: Int64
        private let subscriber: Subscriber

        fileprivate init(entries: AsyncStream<RevocationEntry>, watermark: Int64, subscriber: Subscriber) {
            self.entries = entries
            self.watermark = watermark
            self.subscriber = subscriber
        }

        /// Why the stream ended, if it did other than by its consumer's cancellation.
        public var endReason: EndReason? { subscriber.reason.withLock { $0 } }

        /// Ends the stream (entries already buffered are still delivered) with `reason`.
        public func end(_ reason: EndReason) { subscriber.end(reason) }
    }

    private let state = Mutex(State())
    /// Entries a subscriber may fall behind before it is cut off (`TOKEND_WATCH_BUFFER`).
    public let bufferLimit: Int

    public init(bufferLimit: Int = RevocationBroadcast.defaultBufferLimit) {
        self.bufferLimit = max(1, bufferLimit)
    }

    /// The highest `seq` published.
    public var watermark: Int64 { state.withLock { $0.watermark } }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    public var figures: Figures { state.withLock { Figures(subscribers: $0.subscribers.count, cutOff: $0.cutOff) } }

    /// Hands `entries` (ascending `seq`, as the feed read them) to every subscriber, skipping
    /// those published already.
    public func publish(_ entries: [RevocationEntry]) {
        guard let last = entries.last else { return }
        let cutOff: [Subscriber] = state.withLock { state in
            guard last.seq > state.watermark else { return [] }
            let fresh = entries.drop { $0.seq <= state.watermark }
            state.watermark = last.seq
            var cutOff: [Subscriber] = []
            for (id, subscriber) in state.subscribers {
                for entry in fresh {
                    if case .dropped = subscriber.continuation.yield(entry) {
                        cutOff.append(subscriber)
                        state.subscribers[id] = nil
                        state.cutOff += 1
                        break
                    }
                }
            }
            return cutOff
        }
        // Outside the lock: finishing a stream runs its termination handler, which takes it.
        for subscriber in cutOff { subscriber.end(.overflow) }
    }

    /// A new subscription; it ends when the consuming task is cancelled or stops iterating.
    public func subscribe() -> Subscription {
        let (stream, continuation) = AsyncStream.makeStream(of: RevocationEntry.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        let subscriber = Subscriber(continuation)
        let (id, watermark) = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = subscriber
            return (id, state.watermark)
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return Subscription(entries: stream, watermark: watermark, subscriber: subscriber)
    }
}
