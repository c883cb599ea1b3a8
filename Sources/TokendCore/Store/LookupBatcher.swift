import Synchronization

/// Coalesces concurrent point lookups into batched ones.
///
/// Up to `maxConcurrentBatches` fetches run at a time. A lookup that arrives while fewer run and
/// none is queued fetches its key at once, itself; others queue their keys, and when a fetch
/// returns, the queue's next keys (up to `maxBatchSize`) become a batch that one of its own waiters
/// fetches. Under light load every lookup is its own batch of one, fetched in its caller's task
/// with nothing in between; under heavy load one query answers many requests, which is what lifts
/// a database-bound path above one-query-per-request rates.
///
/// Every fetch runs in the task of a caller that waits for one of its keys (the batch's leader),
/// so no task outlives the lookups it serves. The batch does not belong to that caller alone,
/// though: a leader that is cancelled (its store call timed out) and whose fetch then fails is
/// answered `CancellationError` and hands the batch to another of its waiters, who fetches it
/// again; with none left, its slot passes to the queue's next batch. The newest waiter leads,
/// since with equal time limits it has the most time left. A fetch that succeeds answers every
/// waiter, whatever became of its leader. Slots and batches pass only under the lock, so no queued
/// key is ever left without a leader to come.
public final class LookupBatcher<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    public typealias Fetch = @Sendable ([Key]) async throws -> [Key: Value]

    /// What a waiting lookup is resumed with: its value, or the lead of a batch.
    private enum Outcome {
        case value(Value?)
        case lead(UInt64, keys: [Key])
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Outcome, any Error>
    }

    /// A waiter to resume, outside the lock, with the lead of a batch.
    private struct Promotion {
        var leader: CheckedContinuation<Outcome, any Error>
        var outcome: Outcome

        func resume() { leader.resume(returning: outcome) }
    }

    private enum Arrival {
        case leads(UInt64)
        case waits
    }

    private struct State {
        var queue: [Key: [Waiter]] = [:]
        /// Batches being fetched: the waiters each will answer besides its leader.
        var running: [UInt64: [Key: [Waiter]]] = [:]
    }

    private let fetch: Fetch
    private let maxConcurrentBatches: Int
    private let maxBatchSize: Int
    private let state = Mutex(State())
    private let ids = Atomic<UInt64>(0)
    private let fetches = Atomic<Int64>(0)
    private let fetchedKeys = Atomic<Int64>(0)
    /// Fetches by their number of keys, in `batchSizeBuckets`.
    private let sizes = Mutex([Int64](repeating: 0, count: LookupBatchSizes.upperBounds.count))

    /// Fetches made so far, and the keys they asked for (their ratio is the mean batch size).
    public var figures: (batches: Int64, keys: Int64) {
        (fetches.load(ordering: .relaxed), fetchedKeys.load(ordering: .relaxed))
    }

    /// Fetches made so far by their number of keys.
    public var batchSizes: LookupBatchSizes { LookupBatchSizes(counts: sizes.withLock { $0 }) }

    /// Lookups queued for a coming fetch (not those whose fetch runs); for tests.
    var queuedLookups: Int { state.withLock { $0.queue.values.reduce(0) { $0 + $1.count } } }

    /// Batches holding a slot (being fetched, or handed to a leader that has yet to fetch); for tests.
    var runningBatches: Int { state.withLock { $0.running.count } }

    public init(maxConcurrentBatches: Int = 4, maxBatchSize: Int = 256, fetch: @escaping Fetch) {
        self.fetch = fetch
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.maxBatchSize = max(1, maxBatchSize)
    }

    /// The value for `key`, `nil` when the fetch did not return one. Throws `CancellationError`
    /// when the calling task is cancelled before its batch is answered.
    public func get(_ key: Key) async throws -> Value? {
        try Task.checkCancellation()
        let arrival = state.withLock { state -> Arrival in
            guard state.queue.isEmpty, state.running.count < maxConcurrentBatches else { return .waits }
            let batch = newID()
            state.running[batch] = [:]
            return .leads(batch)
        }
        if case .leads(let batch) = arrival { return try await lead(batch, keys: [key], own: key) }

        let id = newID()
        let outcome = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, any Error>) in
                let (cancelled, promotion) = state.withLock { state -> (Bool, Promotion?) in
                    // Checked under the lock: a cancellation handler that ran before this found
                    // nothing to remove, and one that runs after will find this waiter.
                    if Task.isCancelled { return (true, nil) }
                    state.queue[key, default: []].append(Waiter(id: id, continuation: continuation))
                    // A slot may have come free since the look above.
                    return (false, takeBatch(&state))
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
                promotion?.resume()
            }
        } onCancel: {
            self.leave(id)
        }
        switch outcome {
        case .value(let value): return value
        case .lead(let batch, let keys): return try await lead(batch, keys: keys, own: key)
        }
    }

    private func newID() -> UInt64 { ids.add(1, ordering: .relaxed).newValue }

    /// Fetches a running batch in this (its leader's) task and answers its waiters; the value for
    /// `own`, the leader's key. A cancelled leader whose fetch fails hands the batch on instead.
    private func lead(_ batch: UInt64, keys: [Key], own: Key) async throws -> Value? {
        var result: Result<[Key: Value], any Error> = .failure(CancellationError())
        if !Task.isCancelled {
            count(keys.count)
            do { result = .success(try await fetch(keys)) } catch { result = .failure(error) }
        }
        if case .failure = result, Task.isCancelled {
            // This caller gave up, and that may be what failed the fetch: its waiters are not
            // answered with the failure, but one of them fetches again.
            let promotion = state.withLock { state -> Promotion? in
                guard let waiters = state.running.removeValue(forKey: batch), !waiters.isEmpty else { return takeBatch(&state) }
                return start(waiters, &state)
            }
            promotion?.resume()
            throw CancellationError()
        }
        let (waiters, promotion) = state.withLock { state in
            (state.running.removeValue(forKey: batch) ?? [:], takeBatch(&state))
        }
        for (key, keyWaiters) in waiters {
            for waiter in keyWaiters { waiter.continuation.resume(with: result.map { .value($0[key]) }) }
        }
        promotion?.resume()
        return try result.get()[own]
    }

    /// Fetches `keys` at once, outside the queue and its slots, counted in `figures` and
    /// `batchSizes`: for a caller that batches its lookups itself (`CallbackBatcher`).
    public func fetchBatch(_ keys: [Key]) async throws -> [Key: Value] {
        count(keys.count)
        return try await fetch(keys)
    }

    /// Counts a fetch of `keys` keys made elsewhere (`PostgresBatchReader`) in `figures` and `batchSizes`.
    public func count(_ keys: Int) {
        fetches.add(1, ordering: .relaxed)
        fetchedKeys.add(Int64(keys), ordering: .relaxed)
        let bucket = LookupBatchSizes.bucket(of: keys)
        sizes.withLock { $0[bucket] += 1 }
    }

    /// When a slot is free and keys are queued, moves up to `maxBatchSize` of them into a new
    /// running batch; its leader, to resume outside the lock.
    private func takeBatch(_ state: inout State) -> Promotion? {
        guard state.running.count < maxConcurrentBatches, !state.queue.isEmpty else { return nil }
        var taken: [Key: [Waiter]] = [:]
        while taken.count < maxBatchSize, let entry = state.queue.first {
            taken[entry.key] = entry.value
            state.queue.removeValue(forKey: entry.key)
        }
        return start(taken, &state)
    }

    /// Makes `waiters` (not empty) a running batch led by the newest of them, for all their keys.
    private func start(_ waiters: [Key: [Waiter]], _ state: inout State) -> Promotion {
        var waiters = waiters
        var newest: (key: Key, index: Int, id: UInt64)?
        for (key, keyWaiters) in waiters {
            for (index, waiter) in keyWaiters.enumerated() where waiter.id > newest?.id ?? 0 {
                newest = (key, index, waiter.id)
            }
        }
        let keys = Array(waiters.keys)
        let (key, index, _) = newest!
        let leader = waiters[key]!.remove(at: index)
        if waiters[key]!.isEmpty { waiters.removeValue(forKey: key) }
        let batch = newID()
        state.running[batch] = waiters
        return Promotion(leader: leader.continuation, outcome: .lead(batch, keys: keys))
    }

    /// A cancelled lookup leaves its queue or batch and is answered `CancellationError`. (A leader
    /// is not found here: its own task is what is cancelled, which its fetch sees.)
    private func leave(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            for (key, waiters) in state.queue {
                if let index = waiters.firstIndex(where: { $0.id == id }) {
                    let waiter = state.queue[key]!.remove(at: index)
                    if state.queue[key]!.isEmpty { state.queue.removeValue(forKey: key) }
                    return waiter
                }
            }
            for (batch, batchWaiters) in state.running {
                for (key, waiters) in batchWaiters {
                    guard let index = waiters.firstIndex(where: { $0.id == id }) else { continue }
                    let waiter = state.running[batch]![key]!.remove(at: index)
                    if state.running[batch]![key]!.isEmpty { state.running[batch]!.removeValue(forKey: key) }
                    return waiter
                }
            }
            return nil
        }
        waiter?.continuation.resume(throwing: CancellationError())
    }
}

/// How many fetches a `LookupBatcher` made with how many keys: counts per bucket of batch size,
/// bucket `i` holding the sizes above `upperBounds[i - 1]` up to `upperBounds[i]`.
public struct LookupBatchSizes: Sendable, Equatable {
    public static let upperBounds = [1, 2, 4, 8, 16, 32, 64, 128, Int.max]
    public var counts: [Int64]

    public init(counts: [Int64] = [Int64](repeating: 0, count: Self.upperBounds.count)) {
        self.counts = counts
    }

    static func bucket(of size: Int) -> Int {
        upperBounds.firstIndex { size <= $0 } ?? upperBounds.count - 1
    }

    /// Each bucket's label: "1", "2", "3-4", …, "129+".
    public static let labels: [String] = upperBounds.indices.map { index in
        let low = index == 0 ? 1 : upperBounds[index - 1] + 1
        let high = upperBounds[index]
        if high == Int.max { return "\(low)+" }
        return low == high ? "\(high)" : "\(low)-\(high)"
    }
}
