/// Polls `condition` every millisecond until it holds; throws after `within` (a guard against
/// hanging, not a timing assertion).
public func poll(
    until what: String,
    within: Duration = .seconds(30),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + within
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestSetupError("\(what): not within \(within)") }
        try await Task.sleep(for: .milliseconds(1))
    }
}

/// Runs `body`, failing with `TestSetupError` if it has not returned within `limit`: a guard for
/// operations that would otherwise wait forever when the code under test regresses (a stream that
/// should have ended with an error), not a timing assertion.
public func withDeadline<T: Sendable>(
    _ what: String,
    _ limit: Duration = .seconds(60),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TestSetupError("\(what): still running after \(limit)") }
        return value
    }
}
