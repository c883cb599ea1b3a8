import Foundation
import HTTPTypes
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
        Self.record(
            logger: logger,
            metrics: metrics,
            listener: listener,
            requestID: "\(context.id)",
            method: request.method,
            route: context.endpointPath ?? "unmatched",
            status: response.status.code,
            clientID: context.annotations.clientID,
            duration: ContinuousClock.now - start
        )
        return response
    }

    /// The request's metrics and, at `info`, its line: for the router's answers and the fast path's.
    static func record(
        logger: Logger,
        metrics: TokendMetrics,
        listener: String,
        requestID: @autoclosure () -> String,
        method: HTTPRequest.Method,
        route: String,
        status: Int,
        clientID: String?,
        duration: Duration
    ) {
        metrics.request(listener: listener, route: route, status: status, duration: duration)
        // Building the line costs more than the request it describes: skip it when it would be dropped.
        guard logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = [
            "request_id": "\(requestID())",
            "listener": "\(listener)",
            "method": "\(method.rawValue)",
            "route": "\(route)",
            "status": "\(status)",
            "duration_ms": "\(milliseconds(duration))",
        ]
        if let clientID { metadata["client_id"] = "\(clientID)" }
        logger.info("request", metadata: metadata)
    }

    /// `d` in milliseconds with three decimals ("12.345"), without `String(format:)`.
    static func milliseconds(_ d: Duration) -> String {
        let (seconds, attoseconds) = d.components
        let micros = max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
