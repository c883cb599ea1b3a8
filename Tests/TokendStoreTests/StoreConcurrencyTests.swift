import Foundation
import PostgresNIO
import Testing
import TokendCore
import TokendPostgres
import TokendTestSupport

/// Many writers at once against each store: nothing lost, nothing logged twice, no seq reused.
@Suite struct StoreConcurrencyTests {
    static let revokers = 8
    static let tokensPerRevoker = 50

    @Test(arguments: StoreKind.conformanceCases)
    func concurrentRevocationsAreAllCommittedAndLoggedOnce(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let total = Self.revokers * Self.tokensPerRevoker
            // Access tokens only (revoking one revokes it alone), in 8 grants of 50 stored as 8 batches.
            let grantIDs = (0..<8).map { _ in Randomness.identifier() }
            let tokens = (0..<total).map { i in mint(.access, client: "c\(i % 3)", subject: "s\(i)", grant: grantIDs[i / 50]) }
            for batch in stride(from: 0, to: total, by: 50) {
                try await store.insertTokens(tokens[batch..<batch + 50].map(\.record))
            }

            let at = t0.addingTimeInterval(42)
            let outcomes = try await withThrowingTaskGroup(of: [RevocationOutcome].self) { group in
                for worker in 0..<Self.revokers {
                    let mine = tokens.enumerated().filter { $0.offset % Self.revokers == worker }.map(\.element.hash)
                    group.addTask {
                        var outcomes: [RevocationOutcome] = []
                        for hash in mine { outcomes.append(try await store.revoke(.token(hash), reason: "w\(worker)", at: at)) }
                        return outcomes
                    }
                }
                var all: [RevocationOutcome] = []
                for try await part in group { all += part }
                return all
            }

            #expect(outcomes.count == total)
            #expect(outcomes.allSatisfy { $0.revoked == 1 && $0.seq > 0 })
            #expect(Set(outcomes.map(\.seq)).count == total)

            for minted in tokens { #expect(try await store.token(hash: minted.hash)?.revokedAt == at) }

            let entries = try await log(store)
            #expect(entries.count == total)
            let seqs = entries.map(\.seq)
            #expect(Set(seqs).count == total)
            #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 })
            #expect(Set(seqs) == Set(outcomes.map(\.seq)))
            #expect(try await store.revocationHead() == seqs.max())
            // Every token appears in exactly one entry.
            let logged = entries.flatMap(\.tokenHashes)
            #expect(logged.count == total)
            #expect(Set(logged) == Set(tokens.map(\.hash)))
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func concurrentRevocationsOfTheSameTokensLogEachTokenOnce(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let grants = (0..<20).map { _ in makeGrant() }
            for grant in grants { try await insert(grant, into: store) }
            // Four workers race to revoke the same refresh tokens: each grant is revoked exactly once.
            let outcomes = try await withThrowingTaskGroup(of: [RevocationOutcome].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var outcomes: [RevocationOutcome] = []
                        for grant in grants {
                            outcomes.append(try await store.revoke(.token(grant.refresh.hash), reason: "", at: t0))
                        }
                        return outcomes
                    }
                }
                var all: [RevocationOutcome] = []
                for try await part in group { all += part }
                return all
            }
            let effective = outcomes.filter { $0.revoked > 0 }
            #expect(effective.count == grants.count)
            #expect(effective.allSatisfy { $0.revoked == 3 })
            #expect(outcomes.filter { $0.revoked == 0 }.allSatisfy { $0.seq == 0 })
            #expect(try await log(store).count == grants.count)
            for grant in grants {
                for minted in grant.all { #expect(try await revokedAt(minted, in: store) == t0) }
            }
        }
    }

    @Test(arguments: StoreKind.conformanceCases)
    func concurrentInsertsAreAllStored(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let workers = 8
            let grantsPerWorker = 12
            let grants = (0..<workers * grantsPerWorker).map { i in makeGrant(client: "c\(i % workers)", subject: "s\(i)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    let mine = Array(grants[worker * grantsPerWorker..<(worker + 1) * grantsPerWorker])
                    group.addTask {
                        for grant in mine { try await insert(grant, into: store) }
                    }
                }
                try await group.waitForAll()
            }
            for grant in grants {
                for minted in grant.all {
                    #expect(try await store.token(hash: minted.hash) == minted.record)
                }
            }
            // Everything inserted concurrently is reachable by a client revocation too.
            let outcome = try await store.revoke(.client("c3"), reason: "", at: t0)
            #expect(outcome.revoked == Int64(grants.filter { $0.access.record.clientID == "c3" }.count * 3))
            #expect(outcome.revoked > 0)
        }
    }

    /// Issue 15 item 7. PostgreSQL draws sequence values outside transactions, so an append that
    /// drew seq N can commit after one that drew N+1; a reader that saw N+1 would then read past N
    /// for good. Appends hold an advisory lock from drawing the seq to commit, so the later one
    /// waits: while N is uncommitted, no reader sees anything after it.
    /// Also through a transaction pooler: the lock is transaction-scoped (`pg_advisory_xact_lock`).
    @Test(arguments: [StoreKind.postgres, .pgbouncer])
    func aLaterAppendWaitsForAnEarlierUncommittedOneSoReadersNeverSkipIt(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let postgres = try #require(store as? PostgresStore)
            let entry: @Sendable (String) -> NewRevocationEntry = { value in
                NewRevocationEntry(kind: .subject, value: value, tokenHashes: [], reason: "", revokedCount: 0, createdAt: t0, expiresAt: t0)
            }
            let (earlyAppended, earlyAppendedContinuation) = AsyncStream<Int64>.makeStream()
            let (commitEarly, commitEarlyContinuation) = AsyncStream<Void>.makeStream()
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The slow, early one: draws its seq, then stays open until told to commit.
                group.addTask {
                    try await store.withRevocationTransaction { tx in
                        earlyAppendedContinuation.yield(try await tx.append(entry("early")))
                        for await _ in commitEarly { break }
                    }
                }
                var appended = earlyAppended.makeAsyncIterator()
                let early = try #require(await appended.next())
                // The fast, late one.
                group.addTask {
                    _ = try await store.withRevocationTransaction { tx in try await tx.append(entry("late")) }
                }

                // Wait until the late append has either committed (visible to a reader) or is
                // waiting for the log lock.
                var seen: [Int64] = []
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    seen = try await store.revocations(after: 0, limit: 10).map(\.seq)
                    if !seen.isEmpty { break }
                    let waiting = try await postgres.client.query(
                        """
                        SELECT count(*) FROM pg_locks
                        WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        """,
                        logger: TestEnvironment.logger
                    )
                    var waiters: Int64 = 0
                    for try await row in waiting { waiters = try row.decode(Int64.self) }
                    if waiters > 0 { break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                #expect(seen.isEmpty, "a reader saw \(seen) while seq \(early) was not yet committed")
                #expect(try await store.revocations(after: 0, limit: 10).isEmpty)

                commitEarlyContinuation.yield()
                commitEarlyContinuation.finish()
                try await group.waitForAll()
                let log = try await store.revocations(after: 0, limit: 10)
                #expect(log.map(\.value) == ["early", "late"])
                #expect(log.first?.seq == early)
            }
        }
    }
}
