import Hummingbird
import TokendCore

/// `/healthz` (the process serves) and `/readyz` (the store answers and the feed is in sync).
struct HealthController: Sendable {
    let replica: Replica

    func register(on router: Router<TokendRequestContext>) {
        router.get("/healthz") { _, _ -> Response in
            JSONBody.response(["status": "ok"])
        }
        router.get("/readyz") { _, _ -> Response in
            let readiness = await replica.readiness()
            if readiness.ready { return JSONBody.response(["status": "ready"]) }
            var response = JSONBody.response(["status": "unavailable", "reason": readiness.reason ?? "not ready"], status: .serviceUnavailable)
            response.headers[.retryAfter] = "1"
            return response
        }
    }
}
