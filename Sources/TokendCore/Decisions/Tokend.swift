import Foundation
import Logging

/// One replica's decisions, composed once over its `Replica`: what every wire dialect calls.
///
/// A dialect handler parses, authenticates with `authenticator`, calls one of these, and renders;
/// the policy (roles, audiences, ownership, the RFC outcomes) lives in the types here.
public struct Tokend: Sendable {
    public let replica: Replica
    public let authenticator: ClientAuthenticator
    public let introspector: Introspector
    public let revoker: Revoker
    public let issuer: TokenIssuer
    public let registry: ClientRegistry
    /// `/oauth2/token`.
    public let granter: TokenGranter
    /// RFC 9701 signing keys, shared by the replica set through the store.
    public let signingKeys: SigningKeyRing
    /// `iss` of issued tokens and of the RFC 8414 metadata.
    public let issuerIdentifier: IssuerIdentifier

    /// Slows guessing in every dialect (SPEC "Clients and roles"); per replica.
    public let limiter: GuessLimiter
    /// The record of admin actions (each written by the action's own store transaction).
    public let auditTrail: AuditTrail

    public init(
        replica: Replica,
        issuer: IssuerIdentifier,
        logger: Logger,
        metrics: (any DecisionMetrics)? = nil,
        limits: GuessLimiter.Limits = GuessLimiter.Limits(),
        signingKeyOverlap: TimeInterval = SigningKeyRing.defaultOverlap
    ) {
        self.replica = replica
        self.issuerIdentifier = issuer
        let limiter = GuessLimiter(limits: limits, now: replica.now, metrics: metrics)
        self.limiter = limiter
        let authenticator = ClientAuthenticator(store: replica.store, now: replica.now, limiter: limiter)
        self.authenticator = authenticator
        self.introspector = Introspector(replica: replica, logger: logger, metrics: metrics, limiter: limiter)
        let revoker = Revoker(replica: replica, logger: logger, metrics: metrics)
        self.revoker = revoker
        let tokenIssuer = TokenIssuer(store: replica.store, issuer: issuer, now: replica.now, logger: logger)
        self.issuer = tokenIssuer
        self.granter = TokenGranter(
            store: replica.store,
            issuer: tokenIssuer,
            revoker: revoker,
            now: replica.now,
            logger: logger,
            metrics: metrics,
            limiter: limiter
        )
        self.signingKeys = SigningKeyRing(store: replica.store, overlap: signingKeyOverlap, now: replica.now, logger: logger)
        self.auditTrail = AuditTrail(store: replica.store, logger: logger)
        self.registry = ClientRegistry(store: replica.store, authenticator: authenticator, revoker: revoker, now: replica.now, logger: logger)
    }
}
