import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TokendCore

/// The public listener: OAuth endpoints, Connect RPC, `/authz`, the Kubernetes TokenReview webhook, health.
public func buildPublicRouter(
    _ tokend: Tokend,
    metrics: TokendMetrics,
    logger: Logger,
    kubernetes: KubernetesNaming = KubernetesNaming()
) -> Router<TokendRequestContext> {
    let router = Router(context: TokendRequestContext.self)
    router.add(middleware: AccessLog(logger: logger, metrics: metrics, listener: "public"))
    router.add(middleware: UnroutedErrors(logger: logger))
    OAuthController(
        authenticator: tokend.authenticator,
        introspector: tokend.introspector,
        revoker: tokend.revoker,
        granter: tokend.granter,
        signingKeys: tokend.signingKeys,
        issuer: tokend.issuerIdentifier
    ).register(on: router)
    PublicConnectController(
        authenticator: tokend.authenticator,
        introspector: tokend.introspector,
        revoker: tokend.revoker,
        issuer: tokend.issuer,
        granter: tokend.granter
    ).register(on: router)
    ConnectWatchController(tokend: tokend).register(on: router)
    connectUnknownMethods(router, services: ["IntrospectionService", "TokenService", "RevocationService"])
    TokenReviewController(authenticator: tokend.authenticator, introspector: tokend.introspector, naming: kubernetes).register(on: router)
    HealthController(replica: tokend.replica).register(on: router)
    // Last: it takes every method, so it stands in front of the not-found answer (see its `Route`).
    ForwardAuthController(authenticator: tokend.authenticator, introspector: tokend.introspector).register(on: router)
    return router
}

/// The admin listener: AdminService, metrics, health.
public func buildAdminRouter(_ tokend: Tokend, adminToken: String, metrics: TokendMetrics, logger: Logger) -> Router<TokendRequestContext> {
    let router = Router(context: TokendRequestContext.self)
    router.add(middleware: AccessLog(logger: logger, metrics: metrics, listener: "admin"))
    router.add(middleware: UnroutedErrors(logger: logger))
    AdminController(tokend: tokend, adminToken: adminToken).register(on: router)
    connectUnknownMethods(router, services: ["AdminService"])
    HealthController(replica: tokend.replica).register(on: router)
    MetricsController(metrics: metrics, replica: tokend.replica).register(on: router)
    return router
}
