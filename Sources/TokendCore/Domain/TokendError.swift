/// A domain error. Its description is safe to show a caller: it never holds a token, a secret,
/// SQL or a store's internal message.
///
/// `code` is the one vocabulary of refusals. Each wire dialect (OAuth JSON, Connect, …) maps every
/// code to its answer in exactly one table, so a new dialect is a new table, never a new decision.
public struct TokendError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Hashable, CaseIterable {
        /// The request is malformed (RFC 6749 `invalid_request`, Connect `invalid_argument`).
        case invalidRequest
        /// The request body is larger than the endpoint accepts (64 KiB).
        case tooLarge
        /// The caller could not be authenticated (RFC 6749 §5.2 `invalid_client`).
        case unauthenticated
        /// The caller is authenticated but lacks the role the operation needs.
        case missingRole
        /// The caller may not act on this token: it was issued to another client (RFC 7009 §2.1).
        case notOwner
        /// The named client, token or grant does not exist.
        case notFound
        /// The thing to create exists already.
        case alreadyExists
        /// The store cannot answer now; retrying later may succeed.
        case unavailable
        /// The caller (or its address) is guessing: too many failed authentications or never-issued
        /// tokens in the last minute (SPEC "Clients and roles"). `retryAfter` says when to come back.
        case tooManyRequests
        /// `/oauth2/token`: the refresh token is unknown, expired, revoked, spent or another
        /// client's (RFC 6749 §5.2 `invalid_grant`).
        case invalidGrant
        /// `/oauth2/token`: a requested scope is outside the client's allowed scopes or the grant's
        /// (RFC 6749 §5.2 `invalid_scope`).
        case invalidScope
        /// `/oauth2/token`: a requested audience or resource is outside the client's audiences
        /// (RFC 8707 §2 `invalid_target`).
        case invalidTarget
        /// `/oauth2/token`: a grant type tokend does not offer (RFC 6749 §5.2 `unsupported_grant_type`).
        case unsupportedGrantType
        /// `/oauth2/token`: the client may not use this grant type (RFC 6749 §5.2
        /// `unauthorized_client`: 400 in OAuth, permission denied in the RPC dialects).
        case unauthorizedClient
        /// `Watch`: `after_seq` lies before the retained log; restart from a snapshot (`after_seq` 0).
        case outOfRange
        /// `Watch`: the subscriber fell too far behind the live entries and was cut off.
        case subscriberTooSlow
    }

    public let code: Code
    public let message: String
    /// Seconds after which a retry may succeed (`tooManyRequests`; `unavailable` answers 1).
    public var retryAfter: Int?

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func invalidRequest(_ message: String) -> TokendError { .init(.invalidRequest, message) }
    public static func missingRole(_ message: String) -> TokendError { .init(.missingRole, message) }
    public static func notFound(_ message: String) -> TokendError { .init(.notFound, message) }
    public static func alreadyExists(_ message: String) -> TokendError { .init(.alreadyExists, message) }
    public static let unauthenticated = TokendError(.unauthenticated, "client authentication failed")
    public static let notOwner = TokendError(.notOwner, "the token was not issued to this client")
    public static let tooLarge = TokendError(.tooLarge, "request body exceeds 65536 bytes")
    public static let unavailable = TokendError(.unavailable, "the token store is temporarily unavailable")
    public static func invalidGrant(_ message: String) -> TokendError { .init(.invalidGrant, message) }
    public static func invalidScope(_ message: String) -> TokendError { .init(.invalidScope, message) }
    public static func invalidTarget(_ message: String) -> TokendError { .init(.invalidTarget, message) }
    public static func tooManyRequests(_ message: String, retryAfter: Int) -> TokendError {
        var error = TokendError(.tooManyRequests, message)
        error.retryAfter = retryAfter
        return error
    }
}
