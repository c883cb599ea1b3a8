import Synchronization

/// Coalesces concurrent point lookups into batched ones.
///
/// Up to `maxConcurrentBatches` fetches run at a time. A lookup that arrives while fewer run starts
/// one for its key at once; others queue their keys, and when a fetch returns, the queue's next
/// keys (up to `maxBatchSize`) are fetched together. Under light load every lookup is its own
/// batch of one; under heavy load one query answers many requests, which is what lifts a
/// database-bound path above one-query-per-request rates.
///
/// A fetch belongs to its batch, not to the caller whose lookup started it: each runs in a task of
/// its own, so a caller that is cancelled (its store call timed out) only leaves its batch, and
/// the fetch goes on for the others; a fetch whose every waiter has left is cancelled (for
/// PostgreSQL that closes its connection). Those tasks are bounded: at most `maxConcurrentBatches`
/// exist at a time, and each ends with its fetch. A slot is given up only under the lock and only
/// when the queue is empty, so no queued key is ever left without a fetch to come.
public final class LookupBatcher<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    public typealias Fetch = @Sendable ([Key]) async throws -> [Key: Value]

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Value?, any Error>
    }

    /// A fetch under way: the waiters it will answer, and its task once started.
    private struct Batch {
        var waiters: [Key: [Waiter]]
        var task: Task<Void, Never>?
    }

    private enum Arrival {
        case cancelled
        case queued
        case startsBatch(UInt64, keys: [Key])
    }

    private struct State {
        var nextID: UInt64 = 0
        var queue: [Key: [Waiter]] = [:]
        var running: [UInt64: Batch] = [:]
    }

    private let fetch: Fetch
    private let maxConcurrentBatches: Int
    private let maxBatchSize: Int
    private let state = Mutex(State())
    private let fetches = Atomic<Int64>(0)
    private let fetchedKeys = Atomic<Int64>(0)

    /// Fetches made so far, and the keys they asked for (their ratio is the mean batch size).
    public var figures: (batches: Int64, keys: Int64) {
        (fetches.load(ordering: .relaxed), fetchedKeys.load(ordering: .relaxed))
    }

    /// Lookups queued for a coming fetch (not those whose fetch runs); for tests.
    var queuedLookups: Int { state.withLock { $0.queue.values.reduce(0) { $0 + $1.count } } }

    public init(maxConcurrentBatches: Int = 4, maxBatchSize: Int = 256, fetch: @escaping Fetch) {
        self.fetch = fetch
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.maxBatchSize = max(1, maxBatchSize)
    }

    /// The value for `key`, `nil` when the fetch did not return one. Throws `CancellationError`
    /// when the calling task is cancelled before its batch is answered.
    public func get(_ key: Key) async throws -> Value? {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value?, any Error>) in
                let arrival = state.withLock { state -> Arrival in
                    // Checked under the lock: a cancellation handler that ran before this found
                    // nothing to remove, and one that runs after will find this waiter.
                    if Task.isCancelled { return .cancelled }
                    state.queue[key, default: []].append(Waiter(id: id, continuation: continuation))
                    guard state.running.count < maxConcurrentBatches, let batch = takeBatch(&state) else { return .queued }
                    return .startsBatch(batch.id, keys: batch.keys)
                }
                switch arrival {
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                case .startsBatch(let batch, let keys): start(batch, keys: keys)
                }
            }
        } onCancel: {
            self.leave(id)
        }
    }

    /// Moves up to `maxBatchSize` queued keys into a new running batch; its id and keys.
    private func takeBatch(_ state: inout State) -> (id: UInt64, keys: [Key])? {
        guard !state.queue.isEmpty else { return nil }
        var taken: [Key: [Waiter]] = [:]
        while taken.count < maxBatchSize, let entry = state.queue.first {
            taken[entry.key] = entry.value
            state.queue.removeValue(forKey: entry.key)
        }
        state.nextID += 1
        state.running[state.nextID] = Batch(waiters: taken, task: nil)
        return (state.nextID, Array(taken.keys))
    }

    /// Starts the fetch of a batch just taken, in a task of its own (see the type's comment).
    private func start(_ batch: UInt64, keys: [Key]) {
        let task = Task { await self.run(batch, keys: keys) }
        let abandoned = state.withLock { state -> Bool in
            guard state.running[batch] != nil else { return false }  // already done
            state.running[batch]?.task = task
            return state.running[batch]?.waiters.isEmpty ?? false
        }
        if abandoned { task.cancel() }
    }

    private func run(_ batch: UInt64, keys: [Key]) async {
        fetches.add(1, ordering: .relaxed)
        fetchedKeys.add(Int64(keys.count), ordering: .relaxed)
        let result: Result<[Key: Value], any Error>
        do { result = .success(try await fetch(keys)) } catch { result = .failure(error) }
        let (waiters, next) = state.withLock { state -> ([Key: [Waiter]], (id: UInt64, keys: [Key])?) in
            let waiters = state.running.removeValue(forKey: batch)?.waiters ?? [:]
            return (waiters, takeBatch(&state))
        }
        for (key, keyWaiters) in waiters {
            for waiter in keyWaiters { waiter.continuation.resume(with: result.map { $0[key] }) }
        }
        if let next { start(next.id, keys: next.keys) }
    }

    /// A cancelled lookup leaves its queue or batch and is answered `CancellationError`; a running
    /// batch left without waiters has its fetch cancelled.
    private func leave(_ id: UInt64) {
        let (waiter, abandoned) = state.withLock { state -> (Waiter?, Task<Void, Never>?) in
            for (key, waiters) in state.queue {
                if let index = waiters.firstIndex(where: { $0.id == id }) {
                    let waiter = state.queue[key]!.remove(at: index)
                    if state.queue[key]!.isEmpty { state.queue.removeValue(forKey: key) }
                    return (waiter, nil)
                }
            }
            for (batchID, batch) in state.running {
                for (key, waiters) in batch.waiters {
                    guard let index = waiters.firstIndex(where: { $0.id == id }) else { continue }
                    let waiter = state.running[batchID]!.waiters[key]!.remove(at: index)
                    if state.running[batchID]!.waiters[key]!.isEmpty { state.running[batchID]!.waiters.removeValue(forKey: key) }
                    let abandoned = state.running[batchID]!.waiters.isEmpty ? state.running[batchID]!.task : nil
                    return (waiter, abandoned)
                }
            }
            return (nil, nil)
        }
        waiter?.continuation.resume(throwing: CancellationError())
        abandoned?.cancel()
    }
}
