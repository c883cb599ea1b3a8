import Foundation
import PostgresNIO
import Synchronization
import Testing
import TokendPostgres
import TokendTestSupport

/// The pool tokend configures (`DatabaseURL.configuration`) stops when its `run()` is cancelled, as
/// a service group's shutdown does, whatever its idle connections are doing at that moment.
///
/// With postgres-nio 1.33.2's default keep-alive, `run()` sometimes never returned: a test run hung
/// with two idle test clients that never finished, and this test, with keep-alives every 5-40 ms,
/// hung after 210 and 199 rounds (with none, 300 rounds passed). The configuration has no
/// keep-alive now; the timers it does have are shortened here so that they fire in every round.
@Suite struct PoolShutdownTests {
    @Test func aCancelledClientStopsWhateverItsIdleConnectionsAreDoing() async throws {
        let url = try TestEnvironment.databaseURL()
        for round in 0..<300 {
            var configuration = try DatabaseURL.configuration(url)
            configuration.options.connectionIdleTimeout = .milliseconds(Int.random(in: 20...80))
            if configuration.options.keepAliveBehavior != nil {
                configuration.options.keepAliveBehavior = .init(frequency: .milliseconds(Int.random(in: 5...40)))
            }
            let client = PostgresClient(configuration: configuration, backgroundLogger: TestEnvironment.logger)
            let stopped = Atomic<Bool>(false)
            // Unstructured on purpose: a run that never returns must not hang the test with it; it
            // is abandoned, and the test fails.
            let running = Task {
                await client.run()
                stopped.store(true, ordering: .relaxed)
            }
            await withTaskGroup(of: Void.self) { queries in
                for _ in 0..<4 { queries.addTask { _ = try? await client.query("SELECT pg_sleep(0.01)") } }
            }
            // Not a wait for readiness: the pause is the test's input, a random point in the idle
            // connections' timer cycle at which the client is cancelled.
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...150)))
            running.cancel()
            do {
                try await poll(until: "the client's run() returned after cancellation", within: .seconds(30)) {
                    stopped.load(ordering: .relaxed)
                }
            } catch {
                Issue.record("round \(round): \(error)")
                return
            }
        }
    }
}
