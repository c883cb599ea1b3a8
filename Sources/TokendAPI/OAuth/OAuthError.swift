import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

/// An OAuth 2.0 error response (RFC 6749 §5.2, RFC 7662 §2.3, RFC 7009 §2.2.1) as JSON.
public struct OAuthError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let error: String
    public let errorDescription: String?
    public var headers: HTTPFields = [:]

    public init(status: HTTPResponse.Status, error: String, description: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.error = error
        self.errorDescription = description
        self.headers = headers
    }

    /// The OAuth dialect's one table: every `TokendError` code and its answer.
    public init(_ error: TokendError) {
        switch error.code {
        case .invalidRequest:
            self.init(status: .badRequest, error: "invalid_request", description: error.message)
        case .tooLarge:
            self.init(status: .contentTooLarge, error: "invalid_request", description: error.message)
        case .unauthenticated:
            // RFC 6749 §5.2: 401 with `WWW-Authenticate` naming the scheme the client should use.
            self.init(
                status: .unauthorized,
                error: "invalid_client",
                description: error.message,
                headers: [.wwwAuthenticate: #"Basic realm="tokend""#]
            )
        case .missingRole:
            self.init(status: .forbidden, error: "unauthorized_client", description: error.message)
        case .notOwner:
            // RFC 7009 §2.2.1 answers a revocation refused for ownership with 400.
            self.init(status: .badRequest, error: "unauthorized_client", description: error.message)
        case .notFound:
            self.init(status: .notFound, error: "not_found", description: error.message)
        case .alreadyExists:
            self.init(status: .conflict, error: "conflict", description: error.message)
        case .unavailable:
            self.init(
                status: .serviceUnavailable,
                error: "temporarily_unavailable",
                description: error.message,
                headers: [.retryAfter: "1"]
            )
        case .invalidGrant: self.init(status: .badRequest, error: "invalid_grant", description: error.message)
        case .invalidScope: self.init(status: .badRequest, error: "invalid_scope", description: error.message)
        case .invalidTarget: self.init(status: .badRequest, error: "invalid_target", description: error.message)
        case .unsupportedGrantType: self.init(status: .badRequest, error: "unsupported_grant_type", description: error.message)
        case .unauthorizedClient: self.init(status: .badRequest, error: "unauthorized_client", description: error.message)
        case .outOfRange: self.init(status: .badRequest, error: "invalid_request", description: error.message)
        case .subscriberTooSlow: self.init(status: .tooManyRequests, error: "too_many_requests", description: error.message)
        case .tooManyRequests:
            // RFC 6585 §4; OAuth registers no error code for it.
            self.init(
                status: .tooManyRequests,
                error: "too_many_requests",
                description: error.message,
                headers: [.retryAfter: String(error.retryAfter ?? 60)]
            )
        }
    }

    /// The same table with another Basic challenge on 401: `/authz` names the gateway's realm
    /// (`Basic realm="tokend-gateway"`), so that a gateway's credentials are not mistaken for an
    /// introspection client's.
    public init(_ error: TokendError, challenge: String) {
        self.init(error)
        if error.code == .unauthenticated { headers[.wwwAuthenticate] = challenge }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (headers, body) = rendered
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The answer's headers and JSON body (the HTTP fast path writes them itself).
    var rendered: (headers: HTTPFields, body: ByteBuffer) {
        var body: [String: String] = ["error": error]
        if let errorDescription { body["error_description"] = errorDescription }
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        headers[.pragma] = "no-cache"
        return (headers, JSONBody.encode(body))
    }
}
