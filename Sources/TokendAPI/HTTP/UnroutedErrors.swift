import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TokendCore

/// Answers what no dialect handled: a path no route matches, a method a route does not take, and
/// (never expected) an error that escaped a dialect's table. Each dialect renders its own errors;
/// this is plain HTTP with an OAuth-style JSON body, never a bare 500, a stack trace, SQL or a token.
struct UnroutedErrors: RouterMiddleware {
    typealias Context = TokendRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError where error is OAuthError || error is ConnectError || error is KubernetesStatus {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError where error.status == .notFound {
            return try OAuthError(status: .notFound, error: "not_found", description: "no such endpoint").response(from: request, context: context)
        } catch let error as HTTPError where error.status.code < 500 {
            return try OAuthError(status: error.status, error: "invalid_request", description: error.body ?? "bad request")
                .response(from: request, context: context)
        } catch let error as TokendError {
            return try OAuthError(error).response(from: request, context: context)
        } catch {
            // The log keeps the type; the caller is told to try again, without detail.
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error_type": "\(String(reflecting: type(of: error)))"])
            return try OAuthError(TokendError.unavailable).response(from: request, context: context)
        }
    }
}
