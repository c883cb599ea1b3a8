import Synchronization

/// Coalesces concurrent point lookups into batched ones.
///
/// Up to `maxConcurrentBatches` callers at a time run a fetch themselves ("leaders"). Others that
/// arrive meanwhile queue their keys; a leader, when its fetch returns, answers the queue's waiters
/// and fetches the next batch (up to `maxBatchSize` keys) until the queue is empty. Under light load
/// every lookup is its own batch of one, with no added latency; under heavy load one query answers
/// many requests, which is what lifts a database-bound path above one-query-per-request rates.
/// A leader gives up its role only under the lock and only when the queue is empty, so no queued
/// key is ever left without a leader.
public final class LookupBatcher<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    public typealias Fetch = @Sendable ([Key]) async throws -> [Key: Value]

    private enum Outcome {
        case value(Value?)
        case lead
    }

    private struct State {
        var leaders = 0
        var queue: [Key: [CheckedContinuation<Outcome, any Error>]] = [:]
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

    public init(maxConcurrentBatches: Int = 4, maxBatchSize: Int = 256, fetch: @escaping Fetch) {
        self.fetch = fetch
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
        self.maxBatchSize = max(1, maxBatchSize)
    }

    /// The value for `key`, `nil` when the fetch did not return one.
    public func get(_ key: Key) async throws -> Value? {
        let outcome = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Outcome, any Error>) in
            let lead = state.withLock { state -> Bool in
                if state.leaders < maxConcurrentBatches {
                    state.leaders += 1
                    return true
                }
                state.queue[key, default: []].append(continuation)
                return false
            }
            if lead { continuation.resume(returning: .lead) }
        }
        switch outcome {
        case .value(let value):
            return value
        case .lead:
            return try await lead(first: key)
        }
    }

    private func lead(first: Key) async throws -> Value? {
        var batch: [Key: [CheckedContinuation<Outcome, any Error>]] = [first: []]
        var own: Result<Value?, any Error>?
        while true {
            fetches.add(1, ordering: .relaxed)
            fetchedKeys.add(Int64(batch.count), ordering: .relaxed)
            do {
                let values = try await fetch(Array(batch.keys))
                for (key, waiters) in batch {
                    for waiter in waiters { waiter.resume(returning: .value(values[key])) }
                }
                if own == nil { own = .success(values[first]) }
            } catch {
                for waiters in batch.values {
                    for waiter in waiters { waiter.resume(throwing: error) }
                }
                if own == nil { own = .failure(error) }
            }
            let next = state.withLock { state -> [Key: [CheckedContinuation<Outcome, any Error>]]? in
                if state.queue.isEmpty {
                    state.leaders -= 1
                    return nil
                }
                var taken: [Key: [CheckedContinuation<Outcome, any Error>]] = [:]
                while taken.count < maxBatchSize, let entry = state.queue.first {
                    taken[entry.key] = entry.value
                    state.queue.removeValue(forKey: entry.key)
                }
                return taken
            }
            guard let next else { break }
            batch = next
        }
        return try own!.get()
    }
}
