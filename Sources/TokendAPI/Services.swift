import Foundation
import Logging
import Synchronization
import TokendCore

/// Readiness of one replica, as `/readyz` reports it.
public struct Readiness: Sendable {
    public var ready: Bool
    public var reason: String?

    public init(ready: Bool, reason: String? = nil) {
        self.ready = ready
        self.reason = reason
    }
}

/// This replica's revocation figures, as `AdminService/Status` reports them.
public struct ReplicaStatus: Sendable {
    public var watermark: Int64
    public var head: Int64
    public var lagSeconds: Double
    public var cacheEntries: Int64
    public var filterEntries: Int64
    public var cacheHitRatio: Double = 0
    public var filterBitsPerEntry: Double = 0
    public var filterFalsePositives: Int64 = 0

    public init(watermark: Int64, head: Int64, lagSeconds: Double, cacheEntries: Int64, filterEntries: Int64) {
        self.watermark = watermark
        self.head = head
        self.lagSeconds = lagSeconds
        self.cacheEntries = cacheEntries
        self.filterEntries = filterEntries
    }
}

/// Whether this replica is shutting down: `/readyz` answers 503 from the moment it is.
public final class Lifecycle: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    public var isDraining: Bool { state.load(ordering: .relaxed) }
    public func beginDraining() { state.store(true, ordering: .relaxed) }
}

/// Everything the HTTP layer calls: the composition of Core over one store.
public struct TokendServices: Sendable {
    public let store: any TokendStore
    public let authenticator: ClientAuthenticator
    public let introspector: Introspector
    public let revoker: Revoker
    public let issuer: TokenIssuer
    public let registry: ClientRegistry
    /// `iss` of issued tokens and of the RFC 8414 metadata.
    public let issuerIdentifier: IssuerIdentifier
    public var issuerURL: String { issuerIdentifier.current }
    /// Bearer secret of the admin API.
    public let adminToken: String
    public let logger: Logger
    public let metrics: TokendMetrics
    public let lifecycle = Lifecycle()
    /// This replica's memory and the feed that keeps it current; `nil`: every answer reads the store.
    public let memory: ReplicaMemory?
    public let feed: RevocationFeed?
    public let readiness: @Sendable () async -> Readiness
    public let status: @Sendable () async throws -> ReplicaStatus

    public init(
        store: any TokendStore, issuerURL: String, adminToken: String, logger: Logger,
        now: @escaping Now = { Date() }, metrics: TokendMetrics = TokendMetrics(),
        memory: ReplicaMemory? = nil, feed: RevocationFeed? = nil,
        readiness: (@Sendable () async -> Readiness)? = nil,
        status: (@Sendable () async throws -> ReplicaStatus)? = nil
    ) {
        self.store = store
        self.issuerIdentifier = IssuerIdentifier(issuerURL)
        self.adminToken = adminToken
        self.logger = logger
        self.metrics = metrics
        self.memory = memory
        self.feed = feed
        let authenticator = ClientAuthenticator(store: store, now: now)
        self.authenticator = authenticator
        self.introspector = Introspector(store: store, memory: memory, now: now, logger: logger)
        var afterCommit: (@Sendable (Date) async -> Void)?
        if let feed {
            afterCommit = { @Sendable time in
                // Apply our own revocation to memory before acknowledging it; if the log cannot be
                // read now, stop answering from memory until a later read covers it.
                do { try await feed.sync() } catch { feed.view.invalidate(before: time) }
            }
        }
        let revoker = Revoker(store: store, now: now, logger: logger, afterCommit: afterCommit)
        self.revoker = revoker
        self.issuer = TokenIssuer(store: store, issuer: issuerIdentifier, now: now, logger: logger)
        self.registry = ClientRegistry(store: store, authenticator: authenticator, revoker: revoker, now: now)
        let lifecycle = self.lifecycle
        self.readiness = readiness ?? {
            if lifecycle.isDraining { return Readiness(ready: false, reason: "shutting down") }
            do {
                try await store.ping()
            } catch {
                return Readiness(ready: false, reason: "the token store does not answer")
            }
            if let memory, !memory.view.isFresh(now: now(), maxStaleness: memory.maxStaleness) {
                return Readiness(ready: false, reason: memory.view.lastSync == nil
                    ? "the revocation log has not been loaded yet" : "the revocation feed is out of sync")
            }
            return Readiness(ready: true)
        }
        self.status = status ?? {
            let head = try await store.revocationHead()
            guard let memory else {
                // Without memory every answer reads the store: this replica is always at the head.
                return ReplicaStatus(watermark: head, head: head, lagSeconds: 0, cacheEntries: 0, filterEntries: 0)
            }
            let figures = memory.view.figures
            var status = ReplicaStatus(
                watermark: figures.watermark, head: head,
                lagSeconds: figures.lastSync.map { max(0, now().timeIntervalSince($0)) } ?? -1,
                cacheEntries: Int64(memory.cache.count), filterEntries: Int64(figures.filterEntries))
            status.cacheHitRatio = memory.cache.hitRatio
            status.filterBitsPerEntry = figures.filterBitsPerEntry
            status.filterFalsePositives = Int64(figures.filterFalsePositives)
            return status
        }
    }
}
