import Foundation
import Testing
@testable import TokendCore

@Suite struct TimeLimitTests {
    @Test func fastOperationsReturnTheirValue() async throws {
        #expect(try await withTimeLimit(5) { 42 } == 42)
    }

    @Test func slowOperationsAreCancelledAndTimeOut() async throws {
        let started = ContinuousClock.now
        await #expect(throws: StoreTimeout.self) {
            try await withTimeLimit(0.2) {
                // A wait that only cancellation ends, as a pool's queued connection request is.
                try await Task.sleep(for: .seconds(30))
                return 1
            }
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func errorsPassThrough() async throws {
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await withTimeLimit(5) { () throws -> Int in throw Boom() } }
    }
}
