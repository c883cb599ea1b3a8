import Synchronization

/// Coalesces point lookups into batched fetches, as `LookupBatcher` does, for callers that cannot
/// wait in a task of their own: a channel handler on an event loop (the HTTP fast path's cache
/// misses). A caller queues its key with a completion, and returns; the completion is called
/// once, from a task of `run()`'s, with the key's value, `nil` when the fetch returned none, or
/// the fetch's error.
///
/// Up to `maxConcurrentBatches` workers fetch at a time. A key queued while none runs starts one;
/// a further one starts only once `backlog` keys wait. A worker fetches up to `maxBatchSize`
/// queued keys at once and goes on while keys are queued, so under load no task is made per
/// batch, and one query answers many requests. At a moderate rate one worker reads, in one batch,
/// what arrived during its previous read: fewer and larger batches than two workers that each
/// take a key or two, at less CPU per key and so a shorter queue on a busy machine (the HTTP fast
/// path's misses at half of their peak rate; docs/BENCHMARKS.md). Under load, or while a read is
/// stuck (a stalled connection, until the store's time limit ends it), the backlog grows and a
/// second worker joins.
///
/// The workers are child tasks of `run()`, so none outlives it: when `run()` is cancelled, what
/// is still queued is answered `CancellationError`, and from then on `enqueue` refuses.
///
/// A key may carry a deadline. One still queued when its deadline has passed is answered
/// `CallbackBatcher.Expired` instead of being fetched: its caller has answered by itself by then.
///
/// With a `Read` instead of a `Fetch` (a store that reads without a task: `TokenBatchReader`), a
/// worker is no task but a chain of reads: the caller whose key starts it starts its first read,
/// and each read's completion starts the next while keys are queued. No thread of the concurrency
/// pool is woken for a batch then; `run()` still decides when `enqueue` is open, and what is queued
/// when it is cancelled is answered `CancellationError` as before (a read in flight then ends by
/// itself, through the reader's time limit at worst).
public final class CallbackBatcher<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    public typealias Fetch = @Sendable ([Key]) async throws -> [Key: Value]
    /// Reads `keys` and calls the completion once, on any thread (also from within the call).
    public typealias Read = @Sendable (_ keys: [Key], _ completion: @escaping @Sendable (Result<[Key: Value], any Error>) -> Void) -> Void
    public typealias Completion = @Sendable (Result<Value?, any Error>) -> Void

    private enum Source: Sendable {
        case fetch(Fetch)
        case read(Read)
    }

    /// The answer for a key whose deadline passed while it was queued.
    public struct Expired: Error {}

    private struct Entry {
        var key: Key
        var deadline: ContinuousClock.Instant?
        var completion: Completion
    }

    private struct State {
        var open = false
        var queue: [Entry] = []
        /// Workers started and not yet ended (including those `run()` has yet to start).
        var workers = 0
    }

    private let source: Source
    private let maxConcurrentBatches: Int
    private let maxBatchSize: Int
    private let backlog: Int
    private let state = Mutex(State())
    /// One element per worker to start, for `run()`.
    private let starts: AsyncStream<Void>
    private let startWorker: AsyncStream<Void>.Continuation

    /// `backlog`: how many queued keys start another worker while one runs already.
    public convenience init(maxConcurrentBatches: Int = 2, maxBatchSize: Int = 256, backlog: Int = 16, fetch: @escaping Fetch) {
        self.init(source: .fetch(fetch), maxConcurrentBatches: maxConcurrentBatches, maxBatchSize: maxBatchSize, backlog: backlog)
    }

    /// Workers that are chains of `read`s, not tasks (see the type's description).
    public convenience init(maxConcurrentBatches: Int = 2, maxBatchSize: Int = 256, backlog: Int = 16, read: @escaping Read) {
        self.init(source: .read(read), maxConcurrentBatches: maxConcurrentBatches, maxBatchSize: maxBatchSize, backlog: backlog)
    }

    private init(source: Source, maxConcurrentBatches: Int, maxBatchSize: Int, backlog: Int) {
        self.source = source
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.maxBatchSize = max(1, maxBatchSize)
        self.backlog = max(1, backlog)
        (starts, startWorker) = AsyncStream.makeStream(of: Void.self)
    }

    /// Whether `run()` is running: `enqueue` refuses otherwise.
    public var isRunning: Bool { state.withLock { $0.open } }

    /// Lookups queued and not yet taken by a worker; for tests.
    var queued: Int { state.withLock { $0.queue.count } }

    /// Workers started and not yet ended; for tests.
    var workers: Int { state.withLock { $0.workers } }

    /// Queues a lookup of `key`. `false` (and `completion` is never called) when `run()` is not
    /// running; the caller must look it up another way.
    public func enqueue(_ key: Key, deadline: ContinuousClock.Instant? = nil, completion: @escaping Completion) -> Bool {
        let start = state.withLock { state -> Bool? in
            guard state.open else { return nil }
            state.queue.append(Entry(key: key, deadline: deadline, completion: completion))
            guard state.workers < maxConcurrentBatches, state.workers == 0 || state.queue.count >= backlog else { return false }
            state.workers += 1
            return true
        }
        guard let start else { return false }
        if start {
            switch source {
            case .fetch: startWorker.yield()
            case .read(let read): readNext(read)
            }
        }
        return true
    }

    /// Runs the workers until cancelled. Called once.
    public func run() async {
        state.withLock { $0.open = true }
        await withDiscardingTaskGroup { group in
            // Ends when this task is cancelled.
            for await _ in starts {
                group.addTask { await self.work() }
            }
            let stranded = state.withLock { state -> [Entry] in
                state.open = false
                defer { state.queue = [] }
                return state.queue
            }
            for entry in stranded { entry.completion(.failure(CancellationError())) }
        }
    }

    /// Fetches queued keys, a batch at a time, until none is queued.
    private func work() async {
        guard case .fetch(let fetch) = source else { return }
        while let batch = take(cancelled: Task.isCancelled) {
            let keys = Self.keys(of: batch)
            let result: Result<[Key: Value], any Error>
            do { result = .success(try await fetch(keys)) } catch { result = .failure(error) }
            Self.answer(batch, with: result)
        }
    }

    /// A worker of `read`s: reads the next batch, and once it is answered the one after, until
    /// none is queued.
    private func readNext(_ read: @escaping Read) {
        guard let batch = take(cancelled: !state.withLock { $0.open }) else { return }
        read(Self.keys(of: batch)) { result in
            Self.answer(batch, with: result)
            self.readNext(read)
        }
    }

    /// The batch's keys, each once.
    private static func keys(of batch: [Entry]) -> [Key] {
        var keys: [Key] = []
        var seen = Set<Key>()
        for entry in batch where seen.insert(entry.key).inserted { keys.append(entry.key) }
        return keys
    }

    private static func answer(_ batch: [Entry], with result: Result<[Key: Value], any Error>) {
        for entry in batch { entry.completion(result.map { $0[entry.key] }) }
    }

    /// The next batch, or `nil` (and this worker has ended) when nothing is queued or `run()` is
    /// cancelled (it answers what is queued then). Entries past their deadline are answered
    /// `Expired` on the way.
    private func take(cancelled: Bool) -> [Entry]? {
        let now = ContinuousClock.now
        let (batch, expired) = state.withLock { state -> ([Entry]?, [Entry]) in
            if cancelled {
                state.workers -= 1
                return (nil, [])
            }
            var batch: [Entry] = []
            var expired: [Entry] = []
            var taken = 0
            for entry in state.queue {
                guard batch.count < maxBatchSize else { break }
                taken += 1
                if let deadline = entry.deadline, deadline <= now { expired.append(entry) } else { batch.append(entry) }
            }
            state.queue.removeFirst(taken)
            if batch.isEmpty {
                state.workers -= 1
                return (nil, expired)
            }
            return (batch, expired)
        }
        for entry in expired { entry.completion(.failure(Expired())) }
        return batch
    }
}
