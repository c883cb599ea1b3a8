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
