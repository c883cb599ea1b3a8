/// Reads batches of token records without a task of the caller's: what the HTTP fast path's cache
/// misses use where the store can (`PostgresBatchReader`), so that a batch costs no hop through
/// the concurrency pool. Reads the records of `hashes` as `TokenStore.tokens(hashes:)` does
/// (unknown hashes absent) and calls `completion` once, on any thread (also from within the call).
/// After `timeLimit` the read is answered `StoreTimeout`, whatever the database does.
public protocol TokenBatchReader: Sendable {
    func readTokens(
        _ hashes: [TokenHash],
        timeLimit: Duration?,
        completion: @escaping @Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void
    )
}
