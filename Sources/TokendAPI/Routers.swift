import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TokendCore

/// The public listener: OAuth endpoints, Connect RPC, health.
public func buildPublicRouter(_ services: TokendServices) -> Router<TokendRequestContext> {
    let router = Router(context: TokendRequestContext.self)
    router.add(middleware: AccessLog(logger: services.logger, metrics: services.metrics, listener: "public"))
    router.add(middleware: ErrorMapping(logger: services.logger))
    OAuthController(services: services).register(on: router)
    PublicConnectController(services: services).register(on: router)
    HealthController(services: services).register(on: router)
    return router
}

/// The admin listener: AdminService, metrics, health.
public func buildAdminRouter(_ services: TokendServices) -> Router<TokendRequestContext> {
    let router = Router(context: TokendRequestContext.self)
    router.add(middleware: AccessLog(logger: services.logger, metrics: services.metrics, listener: "admin"))
    router.add(middleware: ErrorMapping(logger: services.logger))
    AdminController(services: services).register(on: router)
    HealthController(services: services).register(on: router)
    router.get("/metrics") { _, _ -> Response in
        if let memory = services.memory { services.metrics.observe(memory, now: Date()) }
        services.metrics.observe(store: services.store)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: services.metrics.exposition())))
    }
    return router
}

/// `/healthz` (the process serves) and `/readyz` (the store answers and the feed is in sync).
struct HealthController: Sendable {
    let services: TokendServices

    func register(on router: Router<TokendRequestContext>) {
        router.get("/healthz") { _, _ -> Response in
            JSONBody.response(["status": "ok"])
        }
        router.get("/readyz") { _, _ -> Response in
            let readiness = await services.readiness()
            if readiness.ready { return JSONBody.response(["status": "ready"]) }
            var response = JSONBody.response(["status": "unavailable", "reason": readiness.reason ?? "not ready"], status: .serviceUnavailable)
            response.headers[.retryAfter] = "1"
            return response
        }
    }
}
