import Synchronization
import Testing
import TokendTestSupport

@testable import TokendCore

// The time limit only guards against a hang (the tests decide on a manual clock or on
// conditions, not on time), so it is generous for a loaded machine.
@Suite(.timeLimit(.minutes(10))) struct LookupBatcherTests {
    /// Counts fetches and the keys per fetch; answers `key * 10`, nothing for negative keys.
    final class Source: Sendable {
        let batches = Mutex<[[Int]]>([])
        let gate: AsyncStream<Void>
        let open: AsyncStream<Void>.Continuation

        init() { (gate, open) = AsyncStream.makeStream(of: Void.self) }

        func fetch(_ keys: [Int], wait: Bool) async throws -> [Int: Int] {
            batches.withLock { $0.append(keys.sorted()) }
            if wait { for await _ in gate { break } }
            var values: [Int: Int] = [:]
            for key in keys where key >= 0 { values[key] = key * 10 }
            return values
        }
    }

    @Test func singleLookupsAreBatchesOfOne() async throws {
        let source = Source()
        let batcher = LookupBatcher<Int, Int> { try await source.fetch($0, wait: false) }
        #expect(try await batcher.get(3) == 30)
        #expect(try await batcher.get(-1) == nil)
        #expect(source.batches.withLock { $0 } == [[3], [-1]])
    }

    /// Waits until `count` lookups are queued behind the running fetches (a condition, with a deadline; the suite's
    /// time limit bounds it).
    static func waitUntilQueued(_ batcher: LookupBatcher<Int, Int>, _ count: Int) async throws {
        try await poll(until: "\(count) lookups queued") { batcher.queuedLookups >= count }
    }

    @Test func lookupsQueuedBehindARunningFetchShareOneBatch() async throws {
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 1000) { try await source.fetch($0, wait: true) }
        try await withThrowingTaskGroup(of: (Int, Int?).self) { group in
            group.addTask { (0, try await batcher.get(0)) }
            // Wait until the first fetch has started, then queue 50 more lookups behind it.
            try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) > 0 }
            for key in 1...50 { group.addTask { (key, try await batcher.get(key)) } }
            try await Self.waitUntilQueued(batcher, 50)
            source.open.yield()  // the first fetch
            source.open.yield()  // the batch of the other 50
            var answers: [Int: Int?] = [:]
            for try await (key, value) in group { answers[key] = value }
            #expect(answers.count == 51)
            #expect(answers.allSatisfy { $0.value == $0.key * 10 })
        }
        #expect(source.batches.withLock { $0 } == [[0], Array(1...50)])
        #expect(batcher.figures.batches == 2 && batcher.figures.keys == 51)
    }

    @Test func queuedLookupsAreBatchedUpToTheBatchSize() async throws {
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 16) { try await source.fetch($0, wait: true) }
        try await withThrowingTaskGroup(of: (Int, Int?).self) { group in
            group.addTask { (0, try await batcher.get(0)) }
            try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) > 0 }
            for key in 1...50 { group.addTask { (key, try await batcher.get(key)) } }
            try await Self.waitUntilQueued(batcher, 50)
            for _ in 0..<5 { source.open.yield() }
            var answers: [Int: Int?] = [:]
            for try await (key, value) in group { answers[key] = value }
            #expect(answers.count == 51 && answers.allSatisfy { $0.value == $0.key * 10 })
        }
        let batches = source.batches.withLock { $0 }
        #expect(batches.map(\.count) == [1, 16, 16, 16, 2])
        #expect(batches.flatMap { $0 }.sorted() == Array(0...50))
        // The histogram the bench reports (`tokend_store_lookup_batch_sizes_total`): one batch of 1,
        // one of 2, three of 9-16.
        let sizes = Dictionary(uniqueKeysWithValues: zip(LookupBatchSizes.labels, batcher.batchSizes.counts))
        #expect(sizes == ["1": 1, "2": 1, "3-4": 0, "5-8": 0, "9-16": 3, "17-32": 0, "33-64": 0, "65-128": 0, "129+": 0])
    }

    /// Issue 14: the caller whose lookup started a fetch times out; the nine queued behind it,
    /// whose own limits have not passed, must still get their values.
    @Test func aTimedOutCallerDoesNotFailTheLookupsQueuedBehindIt() async throws {
        let clock = TestClock()
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 256) { keys in
            // A fetch that a cancellation ends with an error, as a pool's connection request does.
            let values = try await source.fetch(keys, wait: true)
            try Task.checkCancellation()
            return values
        }
        let first = Task { try await withTimeLimit(.seconds(2), clock: clock) { try await batcher.get(0) } }
        try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) > 0 }
        let queued = (1...9).map { key in
            Task { try await withTimeLimit(.seconds(30), clock: clock) { try await batcher.get(key) } }
        }
        try await Self.waitUntilQueued(batcher, 9)
        await clock.waitForSleepers(10)
        clock.advance(by: .seconds(2))
        await #expect(throws: StoreTimeout.self) { try await first.value }
        for _ in 0..<2 { source.open.yield() }
        for (index, lookup) in queued.enumerated() {
            #expect(try await lookup.value == (index + 1) * 10)
        }
    }

    /// Issue 14, within one batch: its leader (the newest waiter) times out while fetching, and the
    /// nine other lookups of that batch, whose limits have not passed, are answered by a fetch of
    /// their keys that one of them makes.
    @Test func aLeaderThatTimesOutHandsItsBatchToTheOthersInIt() async throws {
        let clock = TestClock()
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 256) { keys in
            let values = try await source.fetch(keys, wait: true)
            try Task.checkCancellation()
            return values
        }
        let blocker = Task { try await withTimeLimit(.seconds(30), clock: clock) { try await batcher.get(0) } }
        try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) == 1 }
        let patient = (1...9).map { key in
            Task { try await withTimeLimit(.seconds(30), clock: clock) { try await batcher.get(key) } }
        }
        try await Self.waitUntilQueued(batcher, 9)
        // Queued last, so it leads the next batch; its limit is the shortest.
        let hasty = Task { try await withTimeLimit(.seconds(2), clock: clock) { try await batcher.get(10) } }
        try await Self.waitUntilQueued(batcher, 10)
        await clock.waitForSleepers(11)
        source.open.yield()  // the blocker's fetch returns; the hasty lookup fetches keys 1...10
        #expect(try await blocker.value == 0)
        try await poll(until: "the second batch started") { source.batches.withLock({ $0.count }) == 2 }
        clock.advance(by: .seconds(2))
        await #expect(throws: StoreTimeout.self) { try await hasty.value }
        source.open.yield()
        for (index, lookup) in patient.enumerated() {
            #expect(try await lookup.value == (index + 1) * 10)
        }
        #expect(source.batches.withLock { $0 } == [[0], Array(1...10), Array(1...9)])
    }

    /// A fetch runs in the task of a lookup that waits for it (its batch's leader), never in a task
    /// of its own: for a batch of one and for the batches formed in the queue.
    @Test func everyFetchRunsInTheTaskOfALookupThatWaitsForIt() async throws {
        /// Identities of the tasks that fetched, and of those that called `get`.
        final class Tasks: Sendable {
            let fetching = Mutex<[Int]>([])
            let calling = Mutex<[Int]>([])
        }
        let source = Source()
        let tasks = Tasks()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 2) { keys in
            tasks.fetching.withLock { $0.append(withUnsafeCurrentTask { $0?.hashValue } ?? 0) }
            return try await source.fetch(keys, wait: true)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in 0..<7 {
                group.addTask {
                    tasks.calling.withLock { $0.append(withUnsafeCurrentTask { $0?.hashValue } ?? -1) }
                    let value = try await batcher.get(key)
                    #expect(value == key * 10)
                }
                // One at a time: the first fetches, the others queue.
                if key == 0 {
                    try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) == 1 }
                } else {
                    try await Self.waitUntilQueued(batcher, key)
                }
            }
            for _ in 0..<4 { source.open.yield() }
            try await group.waitForAll()
        }
        let callers = Set(tasks.calling.withLock { $0 })
        let fetchers = tasks.fetching.withLock { $0 }
        #expect(fetchers.count == 4 && fetchers.allSatisfy(callers.contains), "\(fetchers) \(callers)")
    }

    @Test func aCancelledLookupLeavesTheQueueAndTheOthersAreAnswered() async throws {
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 256) { try await source.fetch($0, wait: true) }
        let first = Task { try await batcher.get(0) }
        try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) > 0 }
        let leaving = Task { try await batcher.get(1) }
        let staying = Task { try await batcher.get(2) }
        try await Self.waitUntilQueued(batcher, 2)
        leaving.cancel()
        await #expect(throws: CancellationError.self) { try await leaving.value }
        #expect(batcher.queuedLookups == 1)
        for _ in 0..<2 { source.open.yield() }
        #expect(try await first.value == 0)
        #expect(try await staying.value == 20)
        #expect(source.batches.withLock { $0 } == [[0], [2]])
    }

    /// Five concurrent lookups queued behind a running fetch are coalesced into one fetch of all
    /// five keys; when that fetch fails, every one of them gets its error, and the batcher keeps
    /// working. (The first fetch holds the only slot on the gate until all five have queued, so
    /// the batch is decided by the batcher alone; each lookup fetched on its own would make six
    /// batches.)
    @Test func aFailedFetchFailsEveryWaiterOfThatBatch() async throws {
        struct Boom: Error {}
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 256) { keys in
            let values = try await source.fetch(keys, wait: true)
            if keys.contains(where: (1...5).contains) { throw Boom() }
            return values
        }
        let first = Task { try await batcher.get(0) }
        try await poll(until: "a batch started") { source.batches.withLock({ $0.count }) == 1 }
        let queued = (1...5).map { key in Task { try await batcher.get(key) } }
        try await Self.waitUntilQueued(batcher, 5)
        source.open.yield()  // the first fetch
        #expect(try await first.value == 0)
        try await poll(until: "the second fetch started") { source.batches.withLock({ $0.count }) == 2 }
        // Required: a lookup left out of this batch would wait for a gate the test never opens.
        try #require(source.batches.withLock { $0 } == [[0], [1, 2, 3, 4, 5]], "the five queued lookups were not fetched together")
        source.open.yield()  // that fetch, which fails
        for (index, lookup) in queued.enumerated() {
            await #expect(throws: Boom.self, "lookup \(index + 1)") { try await lookup.value }
        }
        #expect(batcher.figures.batches == 2 && batcher.figures.keys == 6)
        // The batcher keeps working after a failure.
        source.open.yield()
        #expect(try await batcher.get(7) == 70)
        #expect(source.batches.withLock { $0 } == [[0], [1, 2, 3, 4, 5], [7]])
    }

    /// Every slot comes back: thousands of lookups under short real-clock time limits, against a
    /// fetch that takes a random while, sometimes fails, and sometimes ignores cancellation. Once
    /// every caller is answered and every fetch has ended, no batch holds a slot and none is
    /// queued, and a new lookup is answered. (A slot that never came back would leave a replica
    /// answering 503 to every lookup for good.)
    @Test func everySlotComesBackThroughTimeoutsFailuresAndCancellations() async throws {
        struct Boom: Error {}
        final class Count: Sendable { let value = Atomic<Int>(0) }
        let fetching = Count()
        let calm = Count()  // 1: the fetch neither fails nor waits
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 2, maxBatchSize: 8) { keys in
            fetching.value.add(1, ordering: .relaxed)
            defer { fetching.value.subtract(1, ordering: .relaxed) }
            if calm.value.load(ordering: .relaxed) == 1 { return Dictionary(uniqueKeysWithValues: keys.map { ($0, $0 * 10) }) }
            let pause = Int.random(in: 0...3000)
            if Int.random(in: 0..<5) == 0 {
                // Deaf to cancellation, as a query on a dead socket is.
                let end = ContinuousClock.now + .microseconds(pause)
                while ContinuousClock.now < end { await Task.yield() }
            } else {
                try await Task.sleep(for: .microseconds(pause))  // the fetch's duration: the test's input
            }
            if Int.random(in: 0..<10) == 0 { throw Boom() }
            return Dictionary(uniqueKeysWithValues: keys.map { ($0, $0 * 10) })
        }
        let answered = Count()
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<48 {
                group.addTask {
                    for round in 0..<60 {
                        let key = (lane * 60 + round) % 97
                        let limit = Duration.microseconds(Int64.random(in: 200...4000))
                        let lookup = Task { try await withTimeLimit(limit, clock: ContinuousClock()) { try await batcher.get(key) } }
                        if Int.random(in: 0..<8) == 0 { lookup.cancel() }
                        if case .success(let value) = await lookup.result {
                            #expect(value == key * 10)
                            answered.value.add(1, ordering: .relaxed)
                        }
                    }
                }
            }
        }
        try await poll(until: "every fetch ended") { fetching.value.load(ordering: .relaxed) == 0 && batcher.runningBatches == 0 }
        #expect(batcher.queuedLookups == 0)
        calm.value.store(1, ordering: .relaxed)
        #expect(try await batcher.get(5) == 50)
        #expect(answered.value.load(ordering: .relaxed) > 0, "no lookup was ever answered: the test tested nothing")
    }
}
