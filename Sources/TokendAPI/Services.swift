import Foundation
import Logging
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

    public init(watermark: Int64, head: Int64, lagSeconds: Double, cacheEntries: Int64, filterEntries: Int64) {
        self.watermark = watermark
        self.head = head
        self.lagSeconds = lagSeconds
        self.cacheEntries = cacheEntries
        self.filterEntries = filterEntries
    }
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
    public let issuerURL: String
    /// Bearer secret of the admin API.
    public let adminToken: String
    public let logger: Logger
    public let metrics: TokendMetrics
    public let readiness: @Sendable () async -> Readiness
    public let status: @Sendable () async throws -> ReplicaStatus

    public init(
        store: any TokendStore, issuerURL: String, adminToken: String, logger: Logger,
        now: @escaping Now = { Date() }, metrics: TokendMetrics = TokendMetrics(),
        readiness: (@Sendable () async -> Readiness)? = nil,
        status: (@Sendable () async throws -> ReplicaStatus)? = nil
    ) {
        self.store = store
        self.issuerURL = issuerURL
        self.adminToken = adminToken
        self.logger = logger
        self.metrics = metrics
        let authenticator = ClientAuthenticator(store: store, now: now)
        self.authenticator = authenticator
        self.introspector = Introspector(store: store, now: now, logger: logger)
        let revoker = Revoker(store: store, now: now, logger: logger)
        self.revoker = revoker
        self.issuer = TokenIssuer(store: store, issuer: issuerURL, now: now, logger: logger)
        self.registry = ClientRegistry(store: store, authenticator: authenticator, revoker: revoker, now: now)
        self.readiness = readiness ?? {
            do {
                try await store.ping()
                return Readiness(ready: true)
            } catch {
                return Readiness(ready: false, reason: "the token store does not answer")
            }
        }
        self.status = status ?? {
            // Without a replica cache every answer reads the store: this replica is always at the head.
            let head = try await store.revocationHead()
            return ReplicaStatus(watermark: head, head: head, lagSeconds: 0, cacheEntries: 0, filterEntries: 0)
        }
    }
}
