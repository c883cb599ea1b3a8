import Foundation
import Synchronization
import Testing
import TokendTestSupport

@testable import TokendCore

/// An operation that ends only when the test releases it, whatever cancellation says, as a query on
/// a connection to a stopped database does; it reports when it has been cancelled.
final class Stall: Sendable {
    private let waiters = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let released = Mutex(false)
    let cancelled: AsyncStream<Void>
    private let cancellation: AsyncStream<Void>.Continuation

    init() { (cancelled, cancellation) = AsyncStream.makeStream(of: Void.self) }

    /// Waits for `release()`; cancellation is only reported.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done = released.withLock { released in
                    if !released { waiters.withLock { $0.append(continuation) } }
                    return released
                }
                if done { continuation.resume() }
            }
        } onCancel: { [cancellation] in
            cancellation.yield()
        }
    }

    func release() {
        released.withLock { $0 = true }
        for waiter in waiters.withLock({ w in
            defer { w = [] }
            return w
        }) { waiter.resume() }
    }
}

// The time limit only guards against a hang (the tests decide on a manual clock or on
// conditions, not on time), so it is generous for a loaded machine.
@Suite(.timeLimit(.minutes(10))) struct TimeLimitTests {
    @Test func fastOperationsReturnTheirValue() async throws {
        #expect(try await withTimeLimit(.seconds(5), clock: TestClock()) { 42 } == 42)
    }

    @Test func slowOperationsAreCancelledAndTimeOut() async throws {
        let clock = TestClock()
        let stall = Stall()
        let call = Task {
            try await withTimeLimit(.seconds(2), clock: clock) { () async throws -> Int in
                // A wait that only cancellation ends, as a pool's queued connection request is.
                await stall.wait()
                try Task.checkCancellation()
                return 1
            }
        }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(1))
        #expect(clock.sleepers == 1, "timed out before the limit")
        clock.advance(by: .seconds(1))
        await #expect(throws: StoreTimeout.self) { try await call.value }
        // The operation was cancelled.
        for await _ in stall.cancelled { break }
        stall.release()
    }

    /// A task group would wait for a child that ignores cancellation: the caller must not.
    @Test func theCallerIsAnsweredAtTheDeadlineEvenIfTheOperationIgnoresCancellation() async throws {
        let clock = TestClock()
        let stall = Stall()
        defer { stall.release() }
        let call = Task {
            try await withTimeLimit(.seconds(2), clock: clock) { () async -> Int in
                await stall.wait()
                return 1
            }
        }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(2))
        await #expect(throws: StoreTimeout.self) { try await call.value }
        for await _ in stall.cancelled { break }
    }

    @Test func aCancelledCallerIsAnsweredAtOnceAndCancelsTheOperation() async throws {
        let clock = TestClock()
        let stall = Stall()
        defer { stall.release() }
        let call = Task {
            try await withTimeLimit(.seconds(2), clock: clock) { () async -> Int in
                await stall.wait()
                return 1
            }
        }
        await clock.waitForSleepers(1)
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        for await _ in stall.cancelled { break }
    }

    @Test func errorsPassThrough() async throws {
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await withTimeLimit(.seconds(5), clock: TestClock()) { () throws -> Int in throw Boom() }
        }
    }

    @Test func theContinuousClockVariantTimesOut() async throws {
        let stall = Stall()
        defer { stall.release() }
        await #expect(throws: StoreTimeout.self) {
            try await withTimeLimit(0.05) { () async -> Int in
                await stall.wait()
                return 1
            }
        }
    }
}

/// `abandonedOnCancel`: the caller goes on at its cancellation, whatever the operation does.
@Suite(.timeLimit(.minutes(10))) struct AbandonedOnCancelTests {
    final class Count: Sendable {
        let value = Atomic<Int>(0)
        func add() { value.add(1, ordering: .relaxed) }
        var current: Int { value.load(ordering: .relaxed) }
    }

    @Test func valuesAndErrorsPassThrough() async throws {
        struct Boom: Error {}
        let cancels = Count()
        let abandoned = AbandonedOperations()
        #expect(try await abandonedOnCancel(counting: abandoned, { 42 }, onCancel: { cancels.add() }) == 42)
        await #expect(throws: Boom.self) {
            try await abandonedOnCancel(counting: abandoned, { () throws -> Int in throw Boom() }, onCancel: { cancels.add() })
        }
        #expect(cancels.current == 0)
        #expect(abandoned.count == 0)
    }

    /// The operation ignores cancellation (as a query written to a closed connection does): the
    /// caller is answered at once, `onCancel` runs once, and the operation is cancelled.
    @Test func aCancelledCallerIsAnsweredWhileTheOperationRunsOn() async throws {
        let stall = Stall()
        let started = Count()
        let cancels = Count()
        let abandoned = AbandonedOperations()
        let call = Task {
            try await abandonedOnCancel(counting: abandoned, { () async -> Int in
                started.add()
                await stall.wait()
                return 1
            }, onCancel: { cancels.add() })
        }
        try await poll(until: "the operation started") { started.current == 1 }
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(cancels.current == 1)
        for await _ in stall.cancelled { break }
        #expect(abandoned.count == 1, "the abandoned operation runs on")
        stall.release()
        try await poll(until: "the abandoned operation is counted as ended") { abandoned.count == 0 }
    }

    @Test func aCallerCancelledAlreadyDoesNotStartTheOperation() async throws {
        let started = Count()
        let gate = Stall()
        let call = Task {
            await gate.wait()  // until the test has cancelled this task
            return try await abandonedOnCancel({ () async -> Int in
                started.add()
                return 1
            }, onCancel: {})
        }
        call.cancel()
        gate.release()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(started.current == 0)
    }
}

/// A store every call of which stalls until the test releases it, ignoring cancellation but
/// reporting it. Kept as a double: the time-limit tests move a `TestClock` and must see the stalled
/// call cancelled and still running; a real store can be made to stall (a locked table) but not
/// on a clock the test moves, nor tell that its call was given up. Failures and domain answers
/// come from the real embedded store (`failuresAreCountedButDomainAnswersAreNot`).
final class StallingStore: TokendStore {
    let stall = Stall()

    private func act() async throws { await stall.wait() }

    var name: String { "stalling" }
    func ping() async throws { try await act() }
    func createClient(_ client: ClientRecord, audit: AuditEvent?) async throws { try await act() }
    func client(id: String) async throws -> ClientRecord? {
        try await act()
        return nil
    }
    func listClients() async throws -> [ClientRecord] {
        try await act()
        return []
    }
    func deleteClient(id: String, audit: AuditEvent?) async throws -> Bool {
        try await act()
        return false
    }
    func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8], audit: AuditEvent?) async throws -> Bool {
        try await act()
        return false
    }
    func updateClient(_ client: ClientRecord, audit: AuditEvent?) async throws -> Bool {
        try await act()
        return false
    }
    func signingKeys() async throws -> [StoredSigningKey] {
        try await act()
        return []
    }
    func insertFirstSigningKey(_ key: StoredSigningKey) async throws -> Bool {
        try await act()
        return false
    }
    func rotateSigningKey(to key: StoredSigningKey, retiring: Date, audit: AuditEvent?) async throws { try await act() }
    func insertTokens(_ tokens: [TokenRecord], audit: AuditEvent?) async throws { try await act() }
    func token(hash: TokenHash) async throws -> TokenRecord? {
        try await act()
        return nil
    }
    func token(jti: String) async throws -> TokenRecord? {
        try await act()
        return nil
    }
    func withRevocationTransaction<T: Sendable>(_ body: @escaping @Sendable (any RevocationTransaction) async throws -> T) async throws -> T {
        try await act()
        throw CancellationError()
    }
    func revocations(after: Int64, limit: Int) async throws -> [RevocationEntry] {
        try await act()
        return []
    }
    func revocationHead() async throws -> Int64 {
        try await act()
        return 0
    }
    func auditEvents(since: Date?, actor: String?, after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await act()
        return []
    }
    func deleteExpired(before cutoff: Date) async throws -> Int {
        try await act()
        return 0
    }
}

// The time limit only guards against a hang (the tests decide on a manual clock or on
// conditions, not on time), so it is generous for a loaded machine.
@Suite(.timeLimit(.minutes(10))) struct TimeLimitedStoreTests {
    @Test func aStalledCallTimesOutAndIsCountedAsATimeout() async throws {
        let clock = TestClock()
        let base = StallingStore()
        defer { base.stall.release() }
        let store = TimeLimitedStore(base, seconds: 2, clock: clock)
        let call = Task { try await store.withRevocationTransaction { _ in 0 } }
        await clock.waitForSleepers(1)
        #expect(store.calls.snapshot.inFlight == 1)
        clock.advance(by: .seconds(2))
        await #expect(throws: StoreTimeout.self) { try await call.value }
        #expect(store.calls.snapshot == .init(inFlight: 0, calls: 1, failures: 1, timeouts: 1))
        for await _ in base.stall.cancelled { break }
    }

    @Test func failuresAreCountedButDomainAnswersAreNot() async throws {
        try await withStore(.sqlite) { base, takeDown in
            let store = TimeLimitedStore(base, seconds: 60, clock: TestClock())
            let client = ClientRecord(id: "c", roles: [.introspect], audiences: [], secretSalt: [1], secretHash: [2], createdAt: Date())
            try await store.createClient(client, audit: nil)
            await #expect(throws: TokendError.alreadyExists("client \"c\" exists already")) { try await store.createClient(client, audit: nil) }
            #expect(try await store.client(id: "nobody") == nil)
            #expect(store.calls.snapshot == .init(inFlight: 0, calls: 3, failures: 0, timeouts: 0))
            try await takeDown()
            await #expect(throws: (any Error).self) { try await store.ping() }
            #expect(store.calls.snapshot == .init(inFlight: 0, calls: 4, failures: 1, timeouts: 0))
        }
    }

    @Test func garbageCollectionGetsAWiderLimit() async throws {
        let clock = TestClock()
        let base = StallingStore()
        defer { base.stall.release() }
        let store = TimeLimitedStore(base, seconds: 2, clock: clock)
        let call = Task { try await store.deleteExpired(before: Date()) }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(59))
        #expect(clock.sleepers == 1, "clean-up was cut off before 60 s")
        clock.advance(by: .seconds(1))
        await #expect(throws: StoreTimeout.self) { try await call.value }
    }
}
