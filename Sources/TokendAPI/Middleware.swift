import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TokendCore

/// Turns every error into a documented wire error: OAuth JSON on OAuth paths, Connect JSON on
/// Connect paths. Nothing reaches the client as a bare 500, a stack trace, SQL or a token.
struct ErrorMapping: RouterMiddleware {
    typealias Context = TokendRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as OAuthError {
            return try error.response(from: request, context: context)
        } catch let error as ConnectError {
            return try error.response(from: request, context: context)
        } catch {
            return try Self.map(error, path: request.uri.path, logger: logger).response(from: request, context: context)
        }
    }

    static func map(_ error: any Error, path: String, logger: Logger) -> any HTTPResponseError {
        let connect = path.hasPrefix("/tokend.v1.")
        switch error {
        case is NIOTooManyBytesError:
            let message = "request body exceeds \(ConnectCodec.maximumBodySize) bytes"
            return connect
                ? ConnectError(.resourceExhausted, message, status: .contentTooLarge)
                : OAuthError(status: .contentTooLarge, error: "invalid_request", description: message)
        case let error as TokendError:
            if connect { return ConnectError.from(error) }
            switch error.code {
            case .invalidRequest: return OAuthError.invalidRequest(error.message)
            case .unauthenticated: return OAuthError.invalidClient()
            case .forbidden: return OAuthError(status: .forbidden, error: "unauthorized_client", description: error.message)
            case .notFound: return OAuthError(status: .notFound, error: "not_found", description: error.message)
            case .alreadyExists: return OAuthError(status: .conflict, error: "conflict", description: error.message)
            case .unavailable: return OAuthError.temporarilyUnavailable()
            }
        case let error as HTTPError where error.status == .notFound:
            return connect
                ? ConnectError(.unimplemented, "no such method", status: .notFound)
                : OAuthError(status: .notFound, error: "not_found", description: "no such endpoint")
        case let error as HTTPError where error.status.code < 500:
            return connect
                ? ConnectError(.invalidArgument, error.body ?? "bad request", status: error.status)
                : OAuthError(status: error.status, error: "invalid_request", description: error.body ?? "bad request")
        default:
            // Store and network failures: say "try again" without detail; the log keeps the type.
            logger.error("request failed", metadata: ["path": "\(path)", "error_type": "\(String(reflecting: type(of: error)))"])
            return connect
                ? ConnectError.from(.unavailable)
                : OAuthError.temporarilyUnavailable()
        }
    }
}

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
