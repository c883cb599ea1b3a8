import Foundation
import PostgresNIO
import Synchronization
import Testing
import TokendCore
import TokendTestSupport

@testable import TokendPostgres

/// The HTTP fast path's reads of cache misses on connections of their own (`PostgresBatchReader`),
/// against the test server: directly, through PgBouncer, and through a `FaultProxy`.
@Suite(.timeLimit(.minutes(10))) struct PostgresBatchReaderTests {
    /// Runs `body` with a store on a fresh database and a running reader beside it, connected
    /// through `proxy` when given one (made for the database server's port), then stops the reader.
    static func withReader(
        _ kind: StoreKind = .postgres,
        proxied: Bool = false,
        _ body: @Sendable (PostgresStore, PostgresBatchReader, FaultProxy?) async throws -> Void
    ) async throws {
        try await withFreshPostgres(throughPgBouncer: kind == .pgbouncer) { client, url in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger, transactionPooler: kind == .pgbouncer)
            var target = try DatabaseURL(url)
            let proxy = proxied ? try FaultProxy(to: "127.0.0.1", port: target.port) : nil
            defer { proxy?.close() }
            if let proxy { (target.host, target.port) = ("127.0.0.1", proxy.port) }
            let reader = store.batchReader(configuration: try target.connectionConfiguration())
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await reader.run() }
                defer { group.cancelAll() }
                try await body(store, reader, proxy)
            }
        }
    }

    /// What `reader` answers for `hashes`.
    static func read(
        _ reader: PostgresBatchReader,
        _ hashes: [TokenHash],
        within limit: Duration? = .seconds(10)
    ) async -> Result<[TokenHash: TokenRecord], any Error> {
        await withCheckedContinuation { continuation in
            reader.readTokens(hashes, timeLimit: limit) { continuation.resume(returning: $0) }
        }
    }

    /// Through PgBouncer in every run: unnamed statements there, a named prepared one directly.
    @Test(arguments: [StoreKind.postgres, .pgbouncer])
    func readsWhatTheStoreReadsAndCountsItsBatches(kind: StoreKind) async throws {
        try await Self.withReader(kind) { store, reader, _ in
            let grant = Randomness.identifier()
            let minted = (0..<300).map { i in
                mint(i % 3 == 0 ? .refresh : .access, scope: "s\(i)", audiences: ["a\(i)"], grant: grant, extra: i == 7 ? ["k": "v"] : [:])
            }
            try await store.insertTokens(minted.map(\.record))
            let asked = minted.prefix(280).map(\.record.hash)
            let unknown = (0..<5).map { TokenHash(token: "tkd_at_unknown\($0)") }
            let before = store.poolFigures
            let records = try await Self.read(reader, asked + unknown).get()
            #expect(records == (try await store.tokens(hashes: asked)))
            #expect(records.count == 280)
            #expect(records[minted[7].hash]?.extra == ["k": "v"])
            // The connection stays open for the next read, which finds nothing it did not ask for.
            #expect(try await Self.read(reader, [minted[299].hash, unknown[0]]).get() == [minted[299].hash: minted[299].record])
            #expect(try await Self.read(reader, []).get().isEmpty)
            #expect(try await reader.openConnections.filter { $0 }.count == 1)
            let after = store.poolFigures
            // Counted with the store's own batches (the store's read above is one more).
            #expect(after.lookupBatches - before.lookupBatches == 4)
            #expect(after.batchedLookups - before.batchedLookups == 285 + 280 + 2)
        }
    }

    @Test func aReadPastItsTimeLimitIsAnsweredThenAndItsConnectionReplaced() async throws {
        try await Self.withReader(proxied: true) { store, reader, proxy in
            let proxy = try #require(proxy)
            let token = mint()
            try await store.insertTokens([token.record])
            #expect(try await Self.read(reader, [token.hash]).get() == [token.hash: token.record])
            proxy.inject(.blackhole)
            let start = ContinuousClock.now
            // The query goes into the blackhole: answered at the limit, its connection given up.
            // The next read opens another, which never gets past its startup: answered at the
            // limit too, and its opening goes on.
            for _ in 0..<2 {
                let result = await Self.read(reader, [token.hash], within: .milliseconds(300))
                #expect(throws: StoreTimeout.self) { try result.get() }
            }
            #expect(ContinuousClock.now - start < .seconds(5), "answered at the time limit, not the connect timeout")
            try await poll(until: "a second connection accepted") { proxy.accepted == 2 }
            // Healed, the held startup goes through: the next read uses that connection.
            proxy.heal()
            #expect(try await Self.read(reader, [token.hash]).get() == [token.hash: token.record])
            #expect(proxy.accepted == 2, "no third connection")
            #expect(try await reader.openConnections.filter { $0 }.count == 1)
        }
    }

    @Test func readsTimedOutWhileTheConnectionOpensLeaveItOpening() async throws {
        try await Self.withReader(proxied: true) { store, reader, proxy in
            let proxy = try #require(proxy)
            let token = mint()
            try await store.insertTokens([token.record])
            proxy.inject(.blackhole)
            for _ in 0..<3 {
                let result = await Self.read(reader, [token.hash], within: .milliseconds(200))
                #expect(throws: StoreTimeout.self) { try result.get() }
            }
            try await poll(until: "the connection accepted") { proxy.accepted >= 1 }
            proxy.heal()
            #expect(try await Self.read(reader, [token.hash]).get() == [token.hash: token.record])
            #expect(proxy.accepted == 1, "one connect, not one per timed-out read")
        }
    }

    /// The next batch starts inside the failed one's completion, on the same connection's event
    /// loop: it must find the reset connection given up and open another, not be written to it.
    @Test func theBatchAfterAResetOneReadsOnANewConnection() async throws {
        try await Self.withReader(proxied: true) { store, reader, proxy in
            let proxy = try #require(proxy)
            let grant = Randomness.identifier()
            let tokens = [mint(grant: grant), mint(grant: grant)]
            try await store.insertTokens(tokens.map(\.record))
            #expect(try await Self.read(reader, [tokens[0].hash]).get() == [tokens[0].hash: tokens[0].record])
            let batcher = CallbackBatcher<TokenHash, TokenRecord>(maxConcurrentBatches: 1) { hashes, done in
                reader.readTokens(hashes, timeLimit: .seconds(10), completion: done)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await batcher.run() }
                defer { group.cancelAll() }
                try await poll(until: "the batcher runs") { batcher.isRunning }
                proxy.inject(.reset)
                let (first, second) = await withCheckedContinuation { continuation in
                    let results = Mutex<[Int: Result<TokenRecord?, any Error>]>([:])
                    let answered: @Sendable (Int) -> @Sendable (Result<TokenRecord?, any Error>) -> Void = { index in
                        { result in
                            // The reset batch's answer: healed before the next batch starts.
                            if index == 0 { proxy.heal() }
                            let both = results.withLock { results -> (Result<TokenRecord?, any Error>, Result<TokenRecord?, any Error>)? in
                                results[index] = result
                                guard let first = results[0], let second = results[1] else { return nil }
                                return (first, second)
                            }
                            if let both { continuation.resume(returning: both) }
                        }
                    }
                    // The second is queued behind the first, whose read is under way.
                    _ = batcher.enqueue(tokens[0].hash, completion: answered(0))
                    _ = batcher.enqueue(tokens[1].hash, completion: answered(1))
                }
                #expect(throws: (any Error).self) { try first.get() }
                #expect(try second.get() == tokens[1].record)
            }
        }
    }

    @Test func anIdleConnectionIsClosedAndTheNextReadOpensAnother() async throws {
        try await withFreshPostgres(throughPgBouncer: false) { client, url in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let token = mint()
            try await store.insertTokens([token.record])
            let reader = store.batchReader(configuration: try DatabaseURL(url).connectionConfiguration(), idleLimit: .milliseconds(200))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await reader.run() }
                defer { group.cancelAll() }
                // Counted, not looked at: the connection may already be idle-closed when asked.
                #expect(try await Self.read(reader, [token.hash]).get() == [token.hash: token.record])
                #expect(try await reader.connectionsOpened == 1)
                try await poll(until: "the idle connection closed") { try await !reader.openConnections.contains(true) }
                #expect(try await Self.read(reader, [token.hash]).get() == [token.hash: token.record])
                #expect(try await reader.connectionsOpened == 2, "the read after the close opened another")
            }
        }
    }

    @Test func aServerThatRefusesConnectionsFailsReadsAtOnce() async throws {
        try await withFreshPostgres(throughPgBouncer: false) { client, url in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            var target = try DatabaseURL(url)
            // Nothing listens on port 1.
            (target.host, target.port) = ("127.0.0.1", 1)
            let reader = store.batchReader(configuration: try target.connectionConfiguration())
            for _ in 0..<2 {
                let failed = await Self.read(reader, [mint().hash])
                #expect(throws: (any Error).self) { try failed.get() }
                if case .failure(let error) = failed { #expect(!(error is StoreTimeout), "refused at once, not at the limit") }
            }
            #expect(try await reader.openConnections.allSatisfy { !$0 })
        }
    }

    @Test func afterAShutdownReadsAreAnsweredCancellation() async throws {
        try await withFreshPostgres(throughPgBouncer: false) { client, url in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let token = mint()
            try await store.insertTokens([token.record])
            let reader = store.batchReader(configuration: try DatabaseURL(url).connectionConfiguration())
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await reader.run() }
                #expect(try await Self.read(reader, [token.hash]).get() == [token.hash: token.record])
                group.cancelAll()
                try await group.waitForAll()
            }
            #expect(try await reader.openConnections.allSatisfy { !$0 })
            let result = await Self.read(reader, [token.hash])
            #expect(throws: CancellationError.self) { try result.get() }
        }
    }
}
