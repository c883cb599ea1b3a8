import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

/// A refusal on the Kubernetes webhook as a `meta/v1` `Status` object, the body Kubernetes API
/// clients (client-go's REST client, which kube-apiserver's webhook authenticator uses, and the
/// generated clients of other languages) decode from any non-2xx answer to show its `message`.
public struct KubernetesStatus: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    /// `metav1.StatusReason`: `BadRequest`, `Unauthorized`, ….
    public let reason: String
    public let message: String
    public var headers: HTTPFields = [:]

    public init(status: HTTPResponse.Status, reason: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers
    }

    /// The Kubernetes dialect's one table: every `TokendError` code and its answer.
    public init(_ error: TokendError) {
        switch error.code {
        case .invalidRequest:
            self.init(status: .badRequest, reason: "BadRequest", message: error.message)
        case .tooLarge:
            self.init(status: .contentTooLarge, reason: "RequestEntityTooLarge", message: error.message)
        case .unauthenticated:
            // Caller authentication is client_secret_basic, as for introspection.
            self.init(
                status: .unauthorized,
                reason: "Unauthorized",
                message: error.message,
                headers: [.wwwAuthenticate: #"Basic realm="tokend""#]
            )
        case .invalidGrant, .invalidScope, .invalidTarget, .unsupportedGrantType, .outOfRange:
            // Not produced by the webhook (these belong to /oauth2/token and Watch); a bad request if ever.
            self.init(status: .badRequest, reason: "BadRequest", message: error.message)
        case .missingRole, .notOwner, .unauthorizedClient:
            self.init(status: .forbidden, reason: "Forbidden", message: error.message)
        case .notFound:
            self.init(status: .notFound, reason: "NotFound", message: error.message)
        case .alreadyExists:
            self.init(status: .conflict, reason: "AlreadyExists", message: error.message)
        case .unavailable:
            self.init(status: .serviceUnavailable, reason: "ServiceUnavailable", message: error.message, headers: [.retryAfter: "1"])
        case .tooManyRequests, .subscriberTooSlow:
            self.init(
                status: .tooManyRequests,
                reason: "TooManyRequests",
                message: error.message,
                headers: [.retryAfter: String(error.retryAfter ?? 60)]
            )
        }
    }

    /// `{"apiVersion":"v1","kind":"Status","metadata":{},"status":"Failure","message":…,"reason":…,"code":…}`,
    /// with `details.retryAfterSeconds` when the answer carries `Retry-After`.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = StatusBody(
            message: message,
            reason: reason,
            details: headers[.retryAfter].flatMap { Int($0) }.map { StatusBody.Details(retryAfterSeconds: $0) },
            code: status.code
        )
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: JSONBody.encode(body)))
    }
}

/// `meta/v1` `Status` as JSON.
private struct StatusBody: Encodable {
    struct Details: Encodable {
        let retryAfterSeconds: Int
    }
    struct Metadata: Encodable {}
    let apiVersion = "v1"
    let kind = "Status"
    let metadata = Metadata()
    let status = "Failure"
    let message: String
    let reason: String
    let details: Details?
    let code: Int
}
