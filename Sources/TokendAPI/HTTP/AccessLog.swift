import Foundation
import Hummingbird
import Logging

/// One log line per request: id, method, route, status, duration and the authenticated client.
/// Never the query string, a header value or a body: tokens and secrets travel there.
struct AccessLog: RouterMiddleware {
    typealias Context = TokendRequestContext
    let logger: Logger
    let metrics: TokendMetrics
    let listener: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        metrics.request(listener: listener, route: context.endpointPath ?? "unmatched", status: response.status.code, duration: elapsed)
        // Building the line costs more than the request it describes: skip it when it would be dropped.
        guard logger.logLevel <= .info else { return response }
        var metadata: Logger.Metadata = [
            "request_id": "\(context.id)",
            "listener": "\(listener)",
            "method": "\(request.method.rawValue)",
            "route": "\(context.endpointPath ?? "unmatched")",
            "status": "\(response.status.code)",
            "duration_ms": "\(Self.milliseconds(elapsed))",
        ]
        if let clientID = context.annotations.clientID { metadata["client_id"] = "\(clientID)" }
        logger.info("request", metadata: metadata)
        return response
    }

    /// `d` in milliseconds with three decimals ("12.345"), without `String(format:)`.
    static func milliseconds(_ d: Duration) -> String {
        let (seconds, attoseconds) = d.components
        let micros = max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
