import Foundation

extension Replica {
    /// How often a Watch stream checks that this replica's own view is still fresh.
    static let watchFreshnessCheck = Duration.milliseconds(100)
    /// Entries per store read while a subscriber catches up.
    static let watchPageSize = 1000

    /// `RevocationService/Watch` (SPEC "gRPC listener"): hands `send` every committed log entry
    /// with `seq > after`, in `seq` order, then live entries as this replica's feed reads them,
    /// none skipped. `after == 0` starts with a snapshot: every retained entry that has not
    /// expired. Runs until the caller is cancelled, or throws:
    /// - `missingRole` without role `introspect`; `invalidRequest` for a negative `after`;
    /// - `outOfRange` when `after` lies before the retained log (entries after it were collected);
    /// - `unavailable` once this replica's own view is staler than `TOKEND_MAX_STALENESS` (so a
    ///   follower never mistakes a stale hub for a quiet one), when the replica drains, or when it
    ///   keeps no memory (`TOKEND_CACHE_ENTRIES=0`: there is no feed to follow);
    /// - `subscriberTooSlow` when `send` falls the broadcast's `bufferLimit` entries
    ///   (`TOKEND_WATCH_BUFFER`) behind the live entries.
    ///
    /// `callerGone`, when given, returns once the caller has gone away (gRPC signals a cancelled
    /// RPC that way rather than by cancelling the handler's task); the watch then returns at once
    /// instead of at the next entry it fails to send.
    public func watch(
        after: Int64,
        caller: ClientRecord,
        callerGone: (@Sendable () async -> Void)? = nil,
        send: (RevocationEntry) async throws -> Void
    ) async throws {
        guard caller.roles.contains(.introspect) else { throw TokendError.missingRole("this client may not watch revocations") }
        guard after >= 0 else { throw TokendError.invalidRequest("after_seq must not be negative") }
        guard let feed, let memory else {
            throw TokendError(.unavailable, "this replica keeps no revocation feed (TOKEND_CACHE_ENTRIES=0)")
        }
        let stale = TokendError(.unavailable, "this replica's view of the revocation log is stale")
        guard memory.view.isFresh(now: now(), maxStaleness: memory.maxStaleness) else { throw stale }
        if after > 0 {
            let oldest = try await storeCall(logger, "reading the revocation log") {
                try await store.revocations(after: 0, limit: 1).first?.seq
            }
            if let oldest, after < oldest - 1 {
                throw TokendError(.outOfRange, "after_seq \(after) is older than the retained log (from \(oldest)); restart with after_seq 0")
            }
        }
        // Subscribe first: everything up to the subscription's watermark is read from the store,
        // everything after it arrives through the subscription.
        let subscription = feed.broadcast.subscribe()
        var cursor = after
        while cursor < subscription.watermark {
            let from = cursor
            let page = try await storeCall(logger, "reading the revocation log") {
                try await store.revocations(after: from, limit: Self.watchPageSize)
            }
            guard let last = page.last else { break }
            let time = now()
            for entry in page where entry.seq <= subscription.watermark {
                if after == 0 && entry.expiresAt < time { continue }  // the snapshot holds live entries only
                try await send(entry)
            }
            cursor = last.seq
        }
        let sent = max(cursor, subscription.watermark)
        // Live entries are sent from this task (so `send` may write to a non-Sendable body writer
        // and its back-pressure reaches the subscription's bounded buffer); two watchers end the
        // subscription when this replica goes stale or starts draining.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                while true {
                    try await Task.sleep(for: Self.watchFreshnessCheck)
                    if !memory.view.isFresh(now: now(), maxStaleness: memory.maxStaleness) {
                        subscription.end(.ended(stale))
                        return
                    }
                }
            }
            group.addTask { [self] in
                await untilDraining()
                if !Task.isCancelled { subscription.end(.ended(TokendError(.unavailable, "the replica is shutting down"))) }
            }
            if let callerGone {
                group.addTask {
                    await callerGone()
                    if !Task.isCancelled { subscription.end(.callerGone) }
                }
            }
            defer { group.cancelAll() }
            for await entry in subscription.entries where entry.seq > sent {
                if subscription.endReason != nil { break }
                try await send(entry)
            }
            switch subscription.endReason {
            case .overflow?:
                throw TokendError(.subscriberTooSlow, "the subscriber fell \(feed.broadcast.bufferLimit) entries behind")
            case .ended(let error)?:
                throw error
            case .callerGone?:
                return
            case nil:
                return  // the caller went away (cancelled)
            }
        }
    }
}
