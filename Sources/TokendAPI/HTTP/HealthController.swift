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
            let body = ReadinessBody(
                status: readiness.ready ? "ready" : "unavailable",
                reason: readiness.ready ? nil : readiness.reason ?? "not ready",
                standbyReplayLagSeconds: readiness.standbyReplayLagSeconds,
                upstreamLagSeconds: readiness.upstreamLagSeconds
            )
            if readiness.ready { return JSONBody.response(body) }
            var response = JSONBody.response(body, status: .serviceUnavailable)
            response.headers[.retryAfter] = "1"
            return response
        }
    }
}

/// `/readyz`'s JSON: `status`, the `reason` when not ready, and with a hot standby or an upstream its lag.
private struct ReadinessBody: Encodable {
    var status: String
    var reason: String?
    var standbyReplayLagSeconds: Double?
    var upstreamLagSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case status, reason
        case standbyReplayLagSeconds = "standby_replay_lag_seconds"
        case upstreamLagSeconds = "upstream_lag_seconds"
    }
}
