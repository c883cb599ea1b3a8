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

    public static func invalidRequest(_ description: String) -> OAuthError {
        OAuthError(status: .badRequest, error: "invalid_request", description: description)
    }

    /// RFC 6749 §5.2: 401 with `WWW-Authenticate` matching the scheme the client should use.
    public static func invalidClient(_ description: String = "client authentication failed") -> OAuthError {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Basic realm=\"tokend\""
        return OAuthError(status: .unauthorized, error: "invalid_client", description: description, headers: headers)
    }

    public static func temporarilyUnavailable() -> OAuthError {
        var headers = HTTPFields()
        headers[.retryAfter] = "1"
        return OAuthError(
            status: .serviceUnavailable, error: "temporarily_unavailable",
            description: "the token store is temporarily unavailable", headers: headers)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: String] = ["error": error]
        if let errorDescription { body["error_description"] = errorDescription }
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        headers[.pragma] = "no-cache"
        return Response(status: status, headers: headers, body: .init(byteBuffer: JSONBody.encode(body)))
    }
}

/// A Connect protocol error (connectrpc.com/docs/protocol#error-end-stream): JSON `{code, message}`
/// with the HTTP status the protocol maps the code to.
public struct ConnectError: HTTPResponseError, Sendable {
    public enum Code: String, Sendable {
        case canceled, unknown, `internal`, unimplemented, unavailable, unauthenticated
        case invalidArgument = "invalid_argument"
        case deadlineExceeded = "deadline_exceeded"
        case notFound = "not_found"
        case alreadyExists = "already_exists"
        case permissionDenied = "permission_denied"
        case resourceExhausted = "resource_exhausted"
        case failedPrecondition = "failed_precondition"
        case aborted
        case outOfRange = "out_of_range"
        case dataLoss = "data_loss"
    }

    public let code: Code
    public let message: String
    /// Overrides the status the code maps to (415 for an unsupported codec).
    public var statusOverride: HTTPResponse.Status?
    public var headers: HTTPFields = [:]

    public init(_ code: Code, _ message: String, status: HTTPResponse.Status? = nil, headers: HTTPFields = [:]) {
        self.code = code
        self.message = message
        self.statusOverride = status
        self.headers = headers
    }

    public var status: HTTPResponse.Status {
        if let statusOverride { return statusOverride }
        switch code {
        case .canceled: return .init(code: 499)
        case .unknown, .`internal`, .dataLoss: return .internalServerError
        case .invalidArgument, .outOfRange, .failedPrecondition: return .badRequest
        case .deadlineExceeded: return .gatewayTimeout
        case .notFound, .unimplemented: return code == .notFound ? .notFound : .notImplemented
        case .alreadyExists, .aborted: return .conflict
        case .permissionDenied: return .forbidden
        case .resourceExhausted: return .tooManyRequests
        case .unavailable: return .serviceUnavailable
        case .unauthenticated: return .unauthorized
        }
    }

    public static func from(_ error: TokendError) -> ConnectError {
        switch error.code {
        case .invalidRequest: return ConnectError(.invalidArgument, error.message)
        case .unauthenticated: return ConnectError(.unauthenticated, error.message)
        case .forbidden: return ConnectError(.permissionDenied, error.message)
        case .notFound: return ConnectError(.notFound, error.message)
        case .alreadyExists: return ConnectError(.alreadyExists, error.message)
        case .unavailable:
            var headers = HTTPFields()
            headers[.retryAfter] = "1"
            return ConnectError(.unavailable, error.message, headers: headers)
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: JSONBody.encode(["code": code.rawValue, "message": message])))
    }
}

enum JSONBody {
    static func encode(_ object: some Encodable) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(object)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    static func response(_ object: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: encode(object)))
    }
}
