import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension URLSession {
    /// `data(for:)` without its cancellation handler: the request runs to its answer or its
    /// timeout even when the calling task is cancelled. swift-corelibs-foundation's handler calls
    /// `URLSessionTask.cancel()`, which waits on the session's queue while that queue may be
    /// completing the same task and resuming the continuation, whose resumption waits for the
    /// cancelling task's status lock: a deadlock (seen in a test whose task group was cancelled
    /// with requests in flight). A request that cannot be cancelled only costs its timeout.
    public func dataIgnoringCancellation(for request: URLRequest) async throws -> (Data, URLResponse) {
        try await withCheckedThrowingContinuation { continuation in
            let task = dataTask(with: request) { data, response, error in
                if let data, let response {
                    continuation.resume(returning: (data, response))
                } else {
                    continuation.resume(throwing: error ?? URLError(.badServerResponse))
                }
            }
            task.resume()
        }
    }
}
