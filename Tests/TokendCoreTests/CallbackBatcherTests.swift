import Synchronization
import Testing
import TokendTestSupport

@testable import TokendCore

// The time limit only guards against a hang (the tests decide on conditions, not on time).
@Suite(.timeLimit(.minutes(10))) struct CallbackBatcherTests {
    /// Records fetches; answers `key * 10`, nothing for negative keys; the first `held` fetches
    /// wait until the test opens the gate once for each.
    final class Source: Sendable {
        let batches = Mutex<[[Int]]>([])
        let held: Int
        let gate: AsyncStream<Void>
        let open: AsyncStream<Void>.Continuation
        let failure = Mutex<(any Error)?>(nil)

        init(held: Int = 0) {
            self.held = held
            (gate, open) = AsyncStream.makeStream(of: Void.self)
        }

        func fetch(_ keys: [Int]) async throws -> [Int: Int] {
            let index = batches.withLock { batches in
                batches.append(keys.sorted())
                return batches.count
            }
            if index <= held {
                for await _ in gate { break }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            var values: [Int: Int] = [:]
            for key in keys where key >= 0 { values[key] = key * 10 }
            return values
        }

        var fetched: [[Int]] { batches.withLock { $0 } }
    }

    /// The completions' results, by the order of the calls that queued them.
    final class Answers: Sendable {
        let results = Mutex<[Int: Result<Int?, any Error>]>([:])

        func completion(_ index: Int) -> CallbackBatcher<Int, Int>.Completion {
            { result in
                self.results.withLock { results in
                    precondition(results[index] == nil, "completion \(index) called twice")
                    results[index] = result
                }
            }
        }

        var count: Int { results.withLock { $0.count } }
        func value(_ index: Int) -> Int?? { results.withLock { try? $0[index]?.get() } }
        func error(_ index: Int) -> (any Error)? {
            results.withLock { results in
                guard case .failure(let error) = results[index] else { return nil }
                return error
            }
        }
    }

    /// Runs `body` with `batcher` running, then cancels it.
    static func running(_ batcher: CallbackBatcher<Int, Int>, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await batcher.run() }
            try await poll(until: "the batcher runs") { batcher.isRunning }
            try await body()
            group.cancelAll()
        }
    }

    /// Runs `body` with a running batcher of one worker, whose first fetch (of key 1, answered to
    /// completion 0) is held until `body` opens the gate.
    static func withFirstFetchHeld(_ body: (CallbackBatcher<Int, Int>, Source, Answers) async throws -> Void) async throws {
        let source = Source(held: 1)
        let answers = Answers()
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 1) { try await source.fetch($0) }
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(0)))
            try await poll(until: "the first fetch runs") { source.fetched.count == 1 }
            try await body(batcher, source, answers)
        }
    }

    @Test func keysQueuedWhileAFetchRunsBecomeOneBatch() async throws {
        try await Self.withFirstFetchHeld { batcher, source, answers in
            for (index, key) in [2, 3, 2, -5].enumerated() {
                #expect(batcher.enqueue(key, completion: answers.completion(index + 1)))
            }
            #expect(batcher.queued == 4)
            source.open.yield()
            try await poll(until: "every lookup answered") { answers.count == 5 }
            // One query for the four queued lookups, each key once.
            #expect(source.fetched == [[1], [-5, 2, 3]])
            #expect((0..<5).map { answers.value($0) } == [.some(10), .some(20), .some(30), .some(20), .some(nil)])
        }
    }

    @Test func atMostTheConfiguredNumberOfFetchesRunAtOnce() async throws {
        let source = Source(held: 2)
        let answers = Answers()
        // A backlog of one: a second worker starts for any key queued while the first reads.
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 2, backlog: 1) { try await source.fetch($0) }
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(0)))
            try await poll(until: "the first fetch runs") { source.fetched.count == 1 }
            #expect(batcher.enqueue(2, completion: answers.completion(1)))
            try await poll(until: "the second fetch runs") { source.fetched.count == 2 }
            #expect(batcher.enqueue(3, completion: answers.completion(2)))
            #expect(batcher.enqueue(4, completion: answers.completion(3)))
            // Two fetches hold both slots: the others wait in the queue, and no third worker
            // started (it would have fetched them).
            #expect(batcher.workers == 2)
            #expect(batcher.queued == 2)
            #expect(source.fetched.count == 2)
            source.open.yield()
            source.open.yield()
            try await poll(until: "every lookup answered") { answers.count == 4 }
        }
        #expect(source.fetched.prefix(2) == [[1], [2]])
        #expect(source.fetched.dropFirst(2).flatMap { $0 }.sorted() == [3, 4])
        #expect((0..<4).map { answers.value($0) } == [.some(10), .some(20), .some(30), .some(40)])
    }

    /// With the default backlog (as the HTTP fast path runs it), 16 queued keys.
    @Test func aSecondWorkerStartsOnlyOnceTheBacklogIsReached() async throws {
        let source = Source(held: 1)
        let answers = Answers()
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 2) { try await source.fetch($0) }
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(0)))
            try await poll(until: "the first fetch runs") { source.fetched.count == 1 }
            // Below the backlog, keys wait for the worker that reads.
            for key in 2...16 { #expect(batcher.enqueue(key, completion: answers.completion(key - 1))) }
            #expect(batcher.workers == 1)
            #expect(batcher.queued == 15)
            // The 16th queued key starts a second worker, which reads all 16 while the first
            // fetch is still held.
            #expect(batcher.enqueue(17, completion: answers.completion(16)))
            try await poll(until: "the second worker answered its batch") { answers.count == 16 }
            #expect(source.fetched == [[1], Array(2...17)])
            #expect(answers.results.withLock { $0[0] == nil }, "the first fetch is still held")
            source.open.yield()
            try await poll(until: "every lookup answered") { answers.count == 17 }
            #expect((0..<17).map { answers.value($0) } == (1...17).map { .some($0 * 10) })
        }
    }

    @Test func aKeyWhoseDeadlinePassedInTheQueueIsNotFetched() async throws {
        try await Self.withFirstFetchHeld { batcher, source, answers in
            #expect(batcher.enqueue(2, deadline: .now, completion: answers.completion(1)))
            #expect(batcher.enqueue(3, deadline: .now + .seconds(3600), completion: answers.completion(2)))
            source.open.yield()
            try await poll(until: "every lookup answered") { answers.count == 3 }
            #expect(source.fetched == [[1], [3]])
            #expect(answers.error(1) is CallbackBatcher<Int, Int>.Expired)
            #expect(answers.value(2) == .some(30))
        }
    }

    @Test func aFailedFetchAnswersEveryLookupOfItsBatchWithItsError() async throws {
        struct Down: Error {}
        try await Self.withFirstFetchHeld { batcher, source, answers in
            #expect(batcher.enqueue(2, completion: answers.completion(1)))
            #expect(batcher.enqueue(3, completion: answers.completion(2)))
            source.failure.withLock { $0 = Down() }
            source.open.yield()
            try await poll(until: "every lookup answered") { answers.count == 3 }
            #expect((0..<3).allSatisfy { answers.error($0) is Down })
        }
    }

    @Test func lookupsAreRefusedUnlessRunningAndThoseQueuedAtTheEndAreAnswered() async throws {
        let source = Source(held: 1)
        let answers = Answers()
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 1) { try await source.fetch($0) }
        #expect(!batcher.enqueue(1, completion: answers.completion(0)))
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(1)))
            try await poll(until: "the first fetch runs") { source.fetched.count == 1 }
            #expect(batcher.enqueue(2, completion: answers.completion(2)))
        }
        // Cancelled with one fetch held and one lookup queued: the queued one is answered
        // `CancellationError`; the held fetch answers when it ends.
        try await poll(until: "the queued lookup answered") { answers.error(2) != nil }
        #expect(answers.error(2) is CancellationError)
        #expect(!batcher.isRunning)
        #expect(!batcher.enqueue(3, completion: answers.completion(3)))
        #expect(answers.results.withLock { $0[0] == nil && $0[3] == nil }, "a refused lookup is never answered")
        #expect(answers.value(1) == .some(10), "the held fetch answers its lookup")
    }

    // MARK: Workers of reads (a `TokenBatchReader`), no tasks

    /// Reads that wait until the test answers them, in order; answers `key * 10`.
    final class Reads: Sendable {
        typealias Done = @Sendable (Result<[Int: Int], any Error>) -> Void
        let pending = Mutex<[(keys: [Int], done: Done)]>([])
        /// When set, every read is answered within its call, with this.
        let atOnce = Mutex<Result<[Int: Int], any Error>?>(nil)

        func read(_ keys: [Int], _ done: @escaping Done) {
            if let result = atOnce.withLock({ $0 }) { return done(result) }
            pending.withLock { $0.append((keys.sorted(), done)) }
        }

        var keys: [[Int]] { pending.withLock { $0.map(\.keys) } }

        /// Answers the oldest pending read.
        func answerFirst(_ failure: (any Error)? = nil) {
            let (keys, done) = pending.withLock { $0.removeFirst() }
            if let failure { return done(.failure(failure)) }
            done(.success(Dictionary(uniqueKeysWithValues: keys.map { ($0, $0 * 10) })))
        }
    }

    @Test func aReadStartsInTheCallThatQueuesItsKeyAndTheNextInItsCompletion() async throws {
        let reads = Reads()
        let answers = Answers()
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 1) { keys, done in reads.read(keys, done) }
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(0)))
            // Started by `enqueue` itself: no task in between.
            #expect(reads.keys == [[1]])
            for (index, key) in [2, 3, 2].enumerated() { #expect(batcher.enqueue(key, completion: answers.completion(index + 1))) }
            #expect(reads.keys == [[1]])
            #expect(batcher.queued == 3)
            reads.answerFirst()
            // The first read's completion answered its key and started the next read.
            #expect(answers.value(0) == .some(10))
            #expect(reads.keys == [[2, 3]])
            #expect(batcher.workers == 1)
            reads.answerFirst(ReadDown())
            #expect((1...3).allSatisfy { answers.error($0) is ReadDown })
            #expect(batcher.workers == 0)
            #expect(batcher.queued == 0)
            // The next key starts a read again.
            #expect(batcher.enqueue(4, completion: answers.completion(4)))
            #expect(reads.keys == [[4]])
            reads.answerFirst()
            #expect(answers.value(4) == .some(40))
        }
    }

    @Test func readsAnsweredWithinTheirCallDrainTheQueue() async throws {
        let reads = Reads()
        let answers = Answers()
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 2, backlog: 1) { keys, done in reads.read(keys, done) }
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(0)))
            #expect(batcher.enqueue(2, completion: answers.completion(1)))
            #expect(batcher.enqueue(3, completion: answers.completion(2)))
            #expect(batcher.workers == 2)
            reads.atOnce.withLock { $0 = .success([3: 30]) }
            reads.answerFirst()
            // Its worker went on with key 3, answered within the call, and ended.
            #expect(answers.value(0) == .some(10))
            #expect(answers.value(2) == .some(30))
            #expect(batcher.workers == 1)
            reads.answerFirst()
            #expect(answers.value(1) == .some(20))
            #expect(batcher.workers == 0)
        }
    }

    @Test func aReadInFlightAtTheEndAnswersItsKeysAndStartsNoOther() async throws {
        let reads = Reads()
        let answers = Answers()
        let batcher = CallbackBatcher<Int, Int>(maxConcurrentBatches: 1) { keys, done in reads.read(keys, done) }
        try await Self.running(batcher) {
            #expect(batcher.enqueue(1, completion: answers.completion(0)))
            #expect(batcher.enqueue(2, completion: answers.completion(1)))
        }
        try await poll(until: "the queued lookup answered") { answers.error(1) != nil }
        #expect(answers.error(1) is CancellationError)
        #expect(!batcher.enqueue(3, completion: answers.completion(2)))
        reads.answerFirst()
        #expect(answers.value(0) == .some(10))
        #expect(reads.keys.isEmpty, "no read after the end")
        #expect(batcher.workers == 0)
    }
}

private struct ReadDown: Error {}
