import Synchronization

/// Counts of the calls made to a store (kept by `TimeLimitedStore`, so for every store kind).
public final class StoreCallCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// Calls waiting for or running in the store now.
        public var inFlight: Int
        public var calls: Int64
        /// Calls that ended in an error other than a domain answer (not found, exists already).
        public var failures: Int64
        /// Calls cut off by the store time limit (`TOKEND_STORE_TIMEOUT`); also counted as failures.
        public var timeouts: Int64
    }

    private let inFlight = Atomic<Int>(0)
    private let calls = Atomic<Int64>(0)
    private let failures = Atomic<Int64>(0)
    private let timeouts = Atomic<Int64>(0)

    public init() {}

    public var snapshot: Snapshot {
        Snapshot(
            inFlight: inFlight.load(ordering: .relaxed),
            calls: calls.load(ordering: .relaxed),
            failures: failures.load(ordering: .relaxed),
            timeouts: timeouts.load(ordering: .relaxed)
        )
    }

    /// Runs `operation` counted.
    @inlinable
    public func count<T>(_ operation: () async throws -> T) async throws -> T {
        began()
        defer { ended() }
        do {
            return try await operation()
        } catch {
            failed(by: error)
            throw error
        }
    }

    /// `completion`, counted as `count` counts an operation: the call is in flight from now until
    /// `completion` is called (for a call that answers through a callback, `TokenBatchReader`).
    public func counting<T>(_ completion: @escaping @Sendable (Result<T, any Error>) -> Void) -> @Sendable (Result<T, any Error>) -> Void {
        began()
        return { result in
            self.ended()
            if case .failure(let error) = result { self.failed(by: error) }
            completion(result)
        }
    }

    @usableFromInline func began() {
        inFlight.add(1, ordering: .relaxed)
        calls.add(1, ordering: .relaxed)
    }

    @usableFromInline func ended() { inFlight.subtract(1, ordering: .relaxed) }

    /// Counts a call that ended in `error`: a failure unless it is a domain answer (not found,
    /// exists already), and a timeout too when the time limit ended it.
    @usableFromInline func failed(by error: any Error) {
        if error is StoreTimeout {
            failed(timeout: true)
        } else if (error as? TokendError).map({ $0.code == .unavailable }) ?? true {
            failed(timeout: false)
        }
    }

    @usableFromInline func failed(timeout: Bool) {
        failures.add(1, ordering: .relaxed)
        if timeout { timeouts.add(1, ordering: .relaxed) }
    }
}
