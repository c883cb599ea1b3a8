import Synchronization
import Testing
@testable import TokendCore

@Suite struct LookupBatcherTests {
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

    @Test func concurrentLookupsBeyondTheLeadersAreCoalesced() async throws {
        let source = Source()
        let batcher = LookupBatcher<Int, Int>(maxConcurrentBatches: 1, maxBatchSize: 1000) { try await source.fetch($0, wait: true) }
        try await withThrowingTaskGroup(of: (Int, Int?).self) { group in
            group.addTask { (0, try await batcher.get(0)) }
            // Wait until the leader's fetch has started, then queue 50 more lookups behind it.
            while source.batches.withLock({ $0.count }) == 0 { await Task.yield() }
            for key in 1...50 { group.addTask { (key, try await batcher.get(key)) } }
            // Let the queue fill, then release every fetch.
            for _ in 0..<1000 { await Task.yield() }
            for _ in 0..<100 { source.open.yield() }
            var answers: [Int: Int?] = [:]
            for try await (key, value) in group {
                answers[key] = value
                source.open.yield()
            }
            #expect(answers.count == 51)
            #expect(answers.allSatisfy { $0.value == $0.key * 10 })
        }
        let batches = source.batches.withLock { $0 }
        #expect(batches.first == [0])
        #expect(batches.count < 51, "lookups were not coalesced: \(batches.count) fetches")
        #expect(batches.flatMap { $0 }.sorted() == Array(0...50))
    }

    @Test func aFailedFetchFailsEveryWaiterOfThatBatch() async throws {
        struct Boom: Error {}
        let batcher = LookupBatcher<Int, Int> { _ in throw Boom() }
        await #expect(throws: Boom.self) { try await batcher.get(1) }
        // The batcher keeps working after a failure.
        await #expect(throws: Boom.self) { try await batcher.get(2) }
    }
}
