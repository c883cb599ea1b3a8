import Logging

/// Runs a store call on a decision's path: a `TokendError` the store chose (exists already, not
/// found) passes through; any other failure (unreachable, timed out, broken) becomes
/// `TokendError.unavailable`, logged by type only, never by message (it may hold SQL or values).
func storeCall<T>(_ logger: Logger, _ what: @autoclosure () -> String, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as TokendError {
        throw error
    } catch {
        logger.warning("\(what()) failed", metadata: ["error_type": "\(String(reflecting: type(of: error)))"])
        throw TokendError.unavailable
    }
}
