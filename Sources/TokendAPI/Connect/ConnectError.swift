import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

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

    /// The Connect dialect's one table: every `TokendError` code and its answer. `challenge` is
    /// the `WWW-Authenticate` value of an `unauthenticated` answer on a listener whose callers
    /// authenticate with a challengeable scheme (Basic on the public listener).
    public init(_ error: TokendError, challenge: String? = nil) {
        switch error.code {
        case .invalidRequest: self.init(.invalidArgument, error.message)
        case .tooLarge: self.init(.resourceExhausted, error.message, status: .contentTooLarge)
        case .unauthenticated:
            var headers = HTTPFields()
            if let challenge { headers[.wwwAuthenticate] = challenge }
            self.init(.unauthenticated, error.message, headers: headers)
        case .missingRole, .notOwner, .unauthorizedClient: self.init(.permissionDenied, error.message)
        case .invalidGrant, .invalidScope, .invalidTarget, .unsupportedGrantType: self.init(.invalidArgument, error.message)
        case .outOfRange: self.init(.outOfRange, error.message)
        case .subscriberTooSlow: self.init(.resourceExhausted, error.message)
        case .notFound: self.init(.notFound, error.message)
        case .alreadyExists: self.init(.alreadyExists, error.message)
        case .unavailable: self.init(.unavailable, error.message, headers: [.retryAfter: "1"])
        case .tooManyRequests:
            self.init(.resourceExhausted, error.message, headers: [.retryAfter: String(error.retryAfter ?? 60)])
        }
    }

    public var status: HTTPResponse.Status {
        if let statusOverride { return statusOverride }
        switch code {
        case .canceled: return .init(code: 499)
        case .unknown, .`internal`, .dataLoss: return .internalServerError
        case .invalidArgument, .outOfRange, .failedPrecondition: return .badRequest
        case .deadlineExceeded: return .gatewayTimeout
        case .notFound: return .notFound
        case .unimplemented: return .notImplemented
        case .alreadyExists, .aborted: return .conflict
        case .permissionDenied: return .forbidden
        case .resourceExhausted: return .tooManyRequests
        case .unavailable: return .serviceUnavailable
        case .unauthenticated: return .unauthorized
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: JSONBody.encode(["code": code.rawValue, "message": message])))
    }
}
