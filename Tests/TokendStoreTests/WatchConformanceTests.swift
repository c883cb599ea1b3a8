import Foundation
import Synchronization
import Testing
import TokendCore
import TokendTestSupport

/// `RevocationService/Watch` as `Replica.watch` serves it (issue 13 item 1), on every store: the
/// snapshot plus live entries equal the log, nothing is skipped or sent twice under 8 concurrent
/// revokers, a resume from a position misses nothing, and `OUT_OF_RANGE` and the role check hold.
@Suite struct WatchConformanceTests {
    /// What one subscriber received, in order.
    final class Received: Sendable {
        let entries = Mutex<[RevocationEntry]>([])
        var seqs: [Int64] { entries.withLock { $0.map(\.seq) } }
        var count: Int { entries.withLock { $0.count } }
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    static let watcher = ClientRecord(id: "gateway", roles: [.introspect], audiences: [], secretSalt: [], secretHash: [], createdAt: t0)

    /// A replica over `store` with its feed running, and `body` given it; the feed stops after.
    func withReplica(_ store: any TokendStore, _ body: @Sendable (Replica) async throws -> Void) async throws {
        // Real time: the feed's poll and the freshness checks run on it. A generous bound: staleness
        // is not the subject here, and on a loaded machine 8 SQLite revokers held the feed's reads
        // back for over 5 s, the stream ended UNAVAILABLE and the test waited for entries in vain.
        let replica = Replica(store: store, cacheEntries: 1000, maxStaleness: 60, logger: TestEnvironment.logger)
        try await replica.feed?.sync()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await replica.run() }
            defer { group.cancelAll() }
            try await body(replica)
        }
    }

    /// Runs a watcher from `after` into `received` until the group is cancelled; its error, if any, is rethrown.
    static func watch(_ replica: Replica, after: Int64, into received: Received) async throws {
        try await replica.watch(after: after, caller: watcher) { entry in
            received.entries.withLock { $0.append(entry) }
        }
    }

    static func revokeSome(_ store: any TokendStore, count: Int, subject: String) async throws {
        for i in 0..<count {
            let m = mint(.access, subject: "\(subject)-\(i)", issuedAt: Date(), ttl: 3600)
            try await store.insertTokens([m.record])
            _ = try await store.revoke(.token(m.hash), reason: "test", at: Date())
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func snapshotThenLiveEntriesEqualTheLogUnderConcurrentRevokers(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await Self.revokeSome(store, count: 20, subject: "before")
            try await withReplica(store) { replica in
                let received = Received()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await Self.watch(replica, after: 0, into: received) }
                    try await poll(until: "the snapshot") { received.count == 20 }
                    // 8 revokers at once, each through its own transactions.
                    try await withThrowingTaskGroup(of: Void.self) { revokers in
                        for r in 0..<8 { revokers.addTask { try await Self.revokeSome(store, count: 25, subject: "live-\(r)") } }
                        try await revokers.waitForAll()
                    }
                    replica.feed?.wakeUp()
                    try await poll(until: "every live entry") { received.count >= 220 }
                    group.cancelAll()
                }
                let log = try await log(store)
                #expect(log.count == 220)
                #expect(received.seqs == log.map(\.seq), "in seq order, none skipped, none twice")
                #expect(received.entries.withLock { $0 } == log, "the entries themselves")
            }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func aResumeFromAPositionMissesNothingAndRepeatsNothing(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await Self.revokeSome(store, count: 30, subject: "a")
            let log1 = try await log(store)
            let position = log1[9].seq
            try await withReplica(store) { replica in
                let received = Received()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await Self.watch(replica, after: position, into: received) }
                    try await poll(until: "the entries after the position") { received.count == 20 }
                    try await Self.revokeSome(store, count: 5, subject: "b")
                    replica.feed?.wakeUp()
                    try await poll(until: "the live ones") { received.count == 25 }
                    group.cancelAll()
                }
                let all = try await log(store)
                #expect(received.seqs == all.filter { $0.seq > position }.map(\.seq))
            }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func aPositionBeforeTheRetainedLogIsOutOfRangeAndTheRoleIsChecked(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            // Entries that expired long ago, then a live one; collection leaves only the newest.
            let longAgo = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 7200).rounded(.down))
            for i in 0..<5 {
                let m = mint(.access, subject: "old-\(i)", issuedAt: longAgo, ttl: 60)
                try await store.insertTokens([m.record])
                _ = try await store.revoke(.token(m.hash), reason: "old", at: longAgo)
            }
            try await Self.revokeSome(store, count: 1, subject: "new")
            _ = try await store.deleteExpired(before: Date())
            let retained = try await log(store)
            #expect(retained.count == 1)
            let oldest = try #require(retained.first?.seq)
            try await withReplica(store) { replica in
                let received = Received()
                try #require(oldest > 2, "entries were collected")
                // Each of these must end the stream with its error; the deadline only guards a regression.
                await expectError(.outOfRange) { try await withDeadline("OUT_OF_RANGE") { try await Self.watch(replica, after: 1, into: received) } }
                await expectError(.missingRole) {
                    try await withDeadline("the role check") {
                        try await replica.watch(after: 0, caller: makeClient("issuer", roles: [.issue])) { _ in }
                    }
                }
                await expectError(.invalidRequest) { try await withDeadline("after_seq -1") { try await Self.watch(replica, after: -1, into: received) } }
                // Right before the oldest retained entry is fine: nothing was collected after it.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await Self.watch(replica, after: oldest - 1, into: received) }
                    try await poll(until: "the retained entry") { received.count == 1 }
                    group.cancelAll()
                }
                #expect(received.seqs == [oldest])
            }
        }
    }

    @Test func aSubscriberThatFallsBehindIsCutOff() async throws {
        let broadcast = RevocationBroadcast(bufferLimit: 4)
        let subscription = broadcast.subscribe()
        let entries = (1...10).map { RevocationEntry(seq: Int64($0), kind: .jti, value: "j\($0)", tokenHashes: [], reason: "", revokedCount: 1, createdAt: t0) }
        broadcast.publish(entries)
        var delivered: [Int64] = []
        for await entry in subscription.entries { delivered.append(entry.seq) }
        #expect(delivered == [1, 2, 3, 4], "the buffer, then the end")
        #expect(subscription.endReason == .overflow)
        #expect(broadcast.subscriberCount == 0)
        #expect(broadcast.figures.cutOff == 1)
        // Overlapping pages are published once, in order.
        let later = RevocationBroadcast()
        let live = later.subscribe()
        later.publish(Array(entries[0..<6]))
        later.publish(Array(entries[3..<10]))
        later.publish(Array(entries[0..<2]))
        live.end(.ended(.unavailable))
        var seen: [Int64] = []
        for await entry in live.entries { seen.append(entry.seq) }
        #expect(seen == Array(1...10))
        #expect(later.watermark == 10)
    }

    /// gRPC reports a caller that went away on the RPC's cancellation handle, not by cancelling
    /// the handler's task: `callerGone` returning ends the watch at once, without an error, and
    /// its subscription with it.
    @Test(arguments: StoreKind.conformanceCases)
    func aWatchEndsWhenItsCallerIsGone(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await withReplica(store) { replica in
                let gone = AsyncStream.makeStream(of: Void.self)
                let ended = Flag()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await replica.watch(after: 0, caller: Self.watcher, callerGone: { for await _ in gone.stream {} }) { _ in }
                        ended.set()  // returned by itself, without an error
                    }
                    defer { group.cancelAll() }
                    try await poll(until: "the watch subscribed") { replica.feed?.broadcast.subscriberCount == 1 }
                    gone.continuation.finish()
                    try await poll(until: "the watch ended") { ended.isSet }
                    #expect(replica.feed?.broadcast.subscriberCount == 0)
                }
            }
        }
    }
}
