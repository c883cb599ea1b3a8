import Foundation
import Synchronization

/// A store call that did not finish within its time limit.
public struct StoreTimeout: Error, CustomStringConvertible {
    public let seconds: TimeInterval
    public init(seconds: TimeInterval) { self.seconds = seconds }
    public var description: String { "the token store did not answer within \(seconds) s" }
}

/// Runs `operation` and returns what it returns, or throws `StoreTimeout` once `limit` has passed
/// on `clock`, whichever comes first. On a timeout, and when the caller is cancelled, `operation`
/// is cancelled.
///
/// The caller is answered at the deadline even when `operation` ignores cancellation, as a
/// postgres-nio query does while its server has stopped answering (a SIGSTOPped or blackholed
/// database: the socket stays open, nothing answers, nothing resets). A task group cannot do
/// that, since it returns only once every child has returned; so `operation` runs in a task of its
/// own, which the caller waits for only until the deadline and then cancels and leaves to end by
/// itself. Such tasks do not pile up: the stores end a cancelled call promptly (`PostgresStore`
/// closes the connection under it, which fails the query and makes the pool open a fresh one),
/// and the call is counted in flight (`StoreCallCounters`) only until its caller is answered. The
/// one exception holds no connection: a body cancelled between two queries that writes the second
/// to the closed connection (postgres-nio never answers it; `PostgresStore.onConnection`).
public func withTimeLimit<T: Sendable, C: Clock<Duration>>(
    _ limit: Duration,
    clock: C,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let deadline = clock.now.advanced(by: limit)
    let outcome = FirstOutcome<T>()
    let work = Task {
        do { outcome.settle(.success(try await operation())) } catch { outcome.settle(.failure(error)) }
    }
    let result = await withTaskGroup(of: Void.self) { group in
        group.addTask {
            do {
                try await clock.sleep(until: deadline, tolerance: nil)
                outcome.settle(.failure(StoreTimeout(seconds: limit.timeInterval)))
            } catch {
                // Cancelled: the operation settled first.
            }
        }
        let result = await withTaskCancellationHandler {
            await outcome.value()
        } onCancel: {
            outcome.settle(.failure(CancellationError()))
        }
        group.cancelAll()
        return result
    }
    if case .failure = result { work.cancel() }
    return try result.get()
}

/// Runs `operation` in a task of its own and returns what it returns, or throws
/// `CancellationError` as soon as the caller is cancelled, whichever comes first. On the caller's
/// cancellation `onCancel` runs and `operation` is cancelled and left to end by itself: for an
/// operation that may never end, such as a postgres-nio query written to a connection that has
/// closed (`PostgresStore.onConnection`). A caller cancelled already does not start `operation`.
///
/// `abandoned` counts the operations given up this way that have not ended yet
/// (`tokend_store_abandoned_calls`): a count that keeps rising means operations that never end.
public func abandonedOnCancel<T: Sendable>(
    counting abandoned: AbandonedOperations = .store,
    _ operation: @escaping @Sendable () async throws -> T,
    onCancel: @escaping @Sendable () -> Void
) async throws -> T {
    try Task.checkCancellation()
    let outcome = FirstOutcome<T>()
    let work = Task {
        let result: Result<T, any Error>
        do { result = .success(try await operation()) } catch { result = .failure(error) }
        // Lost to the cancellation: this operation was abandoned, and has now ended.
        if !outcome.settle(result) { abandoned.ended() }
    }
    let result = await withTaskCancellationHandler {
        await outcome.value()
    } onCancel: {
        // Counted before the race is decided, so that the count never goes below zero.
        abandoned.began()
        if !outcome.settle(.failure(CancellationError())) { abandoned.ended() }
        onCancel()
        work.cancel()
    }
    return try result.get()
}

/// How many operations `abandonedOnCancel` gave up that are still running.
public final class AbandonedOperations: Sendable {
    /// The store calls' (`PostgresStore.onConnection`), for `/metrics`.
    public static let store = AbandonedOperations()

    private let running = Atomic<Int>(0)

    public init() {}

    public var count: Int { running.load(ordering: .relaxed) }
    func began() { running.add(1, ordering: .relaxed) }
    func ended() { running.subtract(1, ordering: .relaxed) }
}

/// `withTimeLimit` on the continuous clock.
public func withTimeLimit<T: Sendable>(_ seconds: TimeInterval, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withTimeLimit(.milliseconds(Int64(seconds * 1000)), clock: ContinuousClock(), operation)
}

/// The first of several racing outcomes (an operation's result, a timeout, a cancellation), and
/// the one waiter that takes it.
final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<Result<T, any Error>, Never>?
    }

    private let state = Mutex(State())

    /// Records `result` unless an outcome was recorded already; hands it to the waiter. Whether
    /// `result` was the first.
    @discardableResult
    func settle(_ result: Result<T, any Error>) -> Bool {
        let (first, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Result<T, any Error>, Never>?) in
            guard state.result == nil else { return (false, nil) }
            state.result = result
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume(returning: result)
        return first
    }

    /// The first outcome, once there is one. Called once.
    func value() async -> Result<T, any Error> {
        await withCheckedContinuation { continuation in
            let settled = state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let settled { continuation.resume(returning: settled) }
        }
    }
}

extension Duration {
    /// This duration in seconds, for messages and metrics.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
