import Foundation
import Logging

/// Decides whether a token is active. All of RFC 7662's policy lives here, written once for the
/// form endpoint, the Connect endpoint and the admin API.
///
/// With `memory`, a cached record is answered without the store while the revocation view is
/// fresh; its revocation state comes from the view on every answer. A miss, an ambiguous rule or a
/// stale view reads the store (and a failing store then means 503, never a guess).
public struct Introspector: Sendable {
    /// Reads a token's record: the store, or a replica's standby with its fallbacks (`Replica.lookupToken`).
    private let read: @Sendable (TokenHash) async throws -> TokenRecord?
    /// Reads a batch of records the same way (`TokenStore.tokens(hashes:)`, `Replica.lookupTokens`).
    private let readBatch: @Sendable ([TokenHash]) async throws -> [TokenHash: TokenRecord]
    private let memory: ReplicaMemory?
    private let now: Now
    private let logger: Logger
    private let metrics: (any DecisionMetrics)?
    private let limiter: GuessLimiter?

    public init(
        store: any TokenStore,
        memory: ReplicaMemory? = nil,
        now: @escaping Now = { Date() },
        logger: Logger = Logger(label: "tokend.introspect"),
        metrics: (any DecisionMetrics)? = nil,
        limiter: GuessLimiter? = nil
    ) {
        self.init(
            read: { try await store.token(hash: $0) },
            readBatch: { try await store.tokens(hashes: $0) },
            memory: memory,
            now: now,
            logger: logger,
            metrics: metrics,
            limiter: limiter
        )
    }

    private init(
        read: @escaping @Sendable (TokenHash) async throws -> TokenRecord?,
        readBatch: @escaping @Sendable ([TokenHash]) async throws -> [TokenHash: TokenRecord],
        memory: ReplicaMemory?,
        now: @escaping Now,
        logger: Logger,
        metrics: (any DecisionMetrics)?,
        limiter: GuessLimiter?
    ) {
        self.read = read
        self.readBatch = readBatch
        self.memory = memory
        self.now = now
        self.logger = logger
        self.metrics = metrics
        self.limiter = limiter
    }

    /// Introspection on `replica`'s store and memory.
    public init(replica: Replica, logger: Logger, metrics: (any DecisionMetrics)? = nil, limiter: GuessLimiter? = nil) {
        self.init(
            read: { try await replica.lookupToken($0) },
            readBatch: { try await replica.lookupTokens($0) },
            memory: replica.memory,
            now: replica.now,
            logger: logger,
            metrics: metrics,
            limiter: limiter
        )
    }

    /// RFC 7662 §2.1–2.2 for an authenticated client: the caller needs role `introspect`
    /// (`TokendError.missingRole`), `token` is required (`invalidRequest`), and a caller with
    /// audiences sees as active only tokens whose `aud` contains one of them.
    /// Throws `TokendError.unavailable` when the store cannot answer: never a guess either way.
    public func introspect(_ token: String?, caller: ClientRecord) async throws -> IntrospectionResult {
        guard caller.roles.contains(.introspect) else { throw TokendError.missingRole("this client may not introspect tokens") }
        guard let token else { throw TokendError.invalidRequest("token is required") }
        try limiter?.checkUnknownTokens(caller: caller.id)
        do {
            let (result, source, neverIssued) = try await lookup(token: token, audiences: caller.audiences)
            if neverIssued { limiter?.askedNeverIssuedToken(caller: caller.id) }
            metrics?.introspected(result.isActive ? .active : .inactive, source: source)
            return result
        } catch let error as TokendError where error.code == .unavailable {
            metrics?.introspected(.unavailable, source: .store)
            throw error
        }
    }

    /// Introspection for an operator (the admin API): no role and no audience restriction.
    public func introspectAsOperator(_ token: String?) async throws -> IntrospectionResult {
        guard let token else { throw TokendError.invalidRequest("token is required") }
        return try await introspect(token: token, audiences: [])
    }

    /// Introspects a raw token for a caller whose audience restriction is `audiences` (empty: none).
    /// Throws `TokendError.unavailable` when the store cannot answer: never a guess either way.
    public func introspect(token: String, audiences: [String]) async throws -> IntrospectionResult {
        try await answer(token: token, audiences: audiences).result
    }

    /// `introspect`, also saying whether memory or the store answered.
    public func answer(token: String, audiences: [String]) async throws -> (result: IntrospectionResult, source: AnswerSource) {
        let (result, source, _) = try await lookup(token: token, audiences: audiences)
        return (result, source)
    }

    /// `introspect` when memory alone can answer it, synchronously: `nil` when it cannot (no role,
    /// no token, a caller past the guessing limit, a cache miss, a stale view or an ambiguous
    /// rule), and then `introspect` must be asked, which answers or throws as it always does.
    /// What this answers, `introspect` would have answered the same, and it counts the answer in
    /// the metrics as `introspect` does. For the HTTP fast path (`IntrospectionFastPath`).
    public func introspectFromMemory(_ token: String?, caller: ClientRecord) -> IntrospectionResult? {
        guard case .answered(let result) = introspectWithoutWaiting(token, caller: caller) else { return nil }
        return result
    }

    /// `introspectFromMemory`, or, where `introspect` would read the store, what to read
    /// (`PendingIntrospection.hash`, with `records`) and answer with `complete`: a caller that
    /// cannot wait in a task reads by itself. `nil` when `introspect` must be asked (no role, no
    /// token, a caller past the guessing limit).
    public func introspectWithoutWaiting(_ token: String?, caller: ClientRecord) -> MemoryIntrospection? {
        guard caller.roles.contains(.introspect), let token else { return nil }
        if let limiter, limiter.refusesUnknownTokens(caller: caller.id) { return nil }
        let hash: TokenHash
        switch Self.wellFormedHash(token) {
        case nil:
            metrics?.introspected(.inactive, source: .memory)
            return .answered(.inactive)
        case let computed?: hash = computed
        }
        let current = now()
        guard let result = memoryAnswer(hash, audiences: caller.audiences, at: current) else {
            return .read(PendingIntrospection(hash: hash, callerID: caller.id, audiences: caller.audiences, at: current))
        }
        metrics?.introspected(result.isActive ? .active : .inactive, source: .memory)
        return .answered(result)
    }

    /// The records of `hashes`, read as `introspect` reads one (unknown ones are absent).
    public func records(_ hashes: [TokenHash]) async throws -> [TokenHash: TokenRecord] {
        try await readBatch(hashes)
    }

    /// What `introspect` answers once its read returned `record` (or failed): the result, or
    /// `TokendError.unavailable`, logged and counted as `introspect` logs and counts them.
    public func complete(_ pending: PendingIntrospection, with record: Result<TokenRecord?, any Error>) -> Result<IntrospectionResult, TokendError> {
        switch record {
        case .failure(let error):
            readFailed(pending.hash, error)
            metrics?.introspected(.unavailable, source: .store)
            return .failure(.unavailable)
        case .success(let record):
            let (result, neverIssued) = answer(pending.hash, stored: record, audiences: pending.audiences, at: pending.at)
            if neverIssued { limiter?.askedNeverIssuedToken(caller: pending.callerID) }
            metrics?.introspected(result.isActive ? .active : .inactive, source: .store)
            return .success(result)
        }
    }

    /// The token's hash, or `nil` for a token that is not well-formed (inactive without a lookup).
    private static func wellFormedHash(_ token: String) -> TokenHash? {
        guard token.utf8.count <= OpaqueToken.maximumLength, OpaqueToken.isWellFormed(token) else { return nil }
        return TokenHash(token: token)
    }

    /// The answer from the replica's memory, or `nil` when the store must be asked.
    private func memoryAnswer(_ hash: TokenHash, audiences: [String], at current: Date) -> IntrospectionResult? {
        guard let memory, memory.view.isFresh(now: current, maxStaleness: memory.maxStaleness),
            let record = memory.cache.get(hash, now: current)
        else { return nil }
        switch memory.view.verdict(for: record) {
        case .notRevoked: return Self.evaluate(record, audiences: audiences, at: current)
        case .revoked: return .inactive
        case .ambiguous: return nil
        }
    }

    /// `answer`, also saying whether the token is well-formed but was never issued (the store has
    /// no record of it): what the guessing limit counts. Expired and revoked tokens have records.
    func lookup(token: String, audiences: [String]) async throws -> (result: IntrospectionResult, source: AnswerSource, neverIssued: Bool) {
        guard let hash = Self.wellFormedHash(token) else { return (.inactive, .memory, false) }
        let current = now()
        if let result = memoryAnswer(hash, audiences: audiences, at: current) { return (result, .memory, false) }
        let record: TokenRecord?
        do {
            record = try await read(hash)
        } catch {
            readFailed(hash, error)
            throw TokendError.unavailable
        }
        let (result, neverIssued) = answer(hash, stored: record, audiences: audiences, at: current)
        return (result, .store, neverIssued)
    }

    private func readFailed(_ hash: TokenHash, _ error: any Error) {
        logger.warning("token store lookup failed", metadata: ["token_hash": "\(hash)", "error": "\(String(reflecting: type(of: error)))"])
    }

    /// The answer on the store's `record` for `hash` (kept in memory when not revoked), and
    /// whether the token was never issued (no record).
    private func answer(_ hash: TokenHash, stored record: TokenRecord?, audiences: [String], at current: Date) -> (IntrospectionResult, neverIssued: Bool) {
        guard let record else { return (.inactive, true) }
        if let memory {
            if record.revokedAt == nil { memory.cache.put(record, now: current) } else { memory.cache.remove(hash) }
        }
        return (Self.evaluate(record, audiences: audiences, at: current), false)
    }

    /// RFC 7662 policy on a known record: revocation, validity window and audience restriction.
    public static func evaluate(_ record: TokenRecord, audiences: [String], at now: Date) -> IntrospectionResult {
        if record.revokedAt != nil || record.spentAt != nil { return .inactive }
        if record.expiresAt <= now { return .inactive }
        if let nbf = record.notBefore, nbf > now { return .inactive }
        if !audiences.isEmpty, !record.audiences.contains(where: audiences.contains) { return .inactive }
        return .active(record)
    }
}

/// What `Introspector.introspectWithoutWaiting` found.
public enum MemoryIntrospection: Sendable {
    /// Memory answered.
    case answered(IntrospectionResult)
    /// The store must be read: `Introspector.records`, then `Introspector.complete`.
    case read(PendingIntrospection)
}

/// An introspection waiting for its token's record.
public struct PendingIntrospection: Sendable {
    public let hash: TokenHash
    let callerID: String
    let audiences: [String]
    /// When it was asked: what the record is judged at, as `introspect` judges it.
    let at: Date
}
