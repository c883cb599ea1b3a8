/// A domain error. Its description is safe to show a caller: it never holds a token, a secret,
/// SQL or a store's internal message. The HTTP and RPC layers map `code` to their wire errors.
public struct TokendError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The request is malformed (RFC 6749 `invalid_request`, Connect `invalid_argument`).
        case invalidRequest
        /// The caller could not be authenticated.
        case unauthenticated
        /// The caller is authenticated but may not do this.
        case forbidden
        /// The named client, token or grant does not exist.
        case notFound
        /// The thing to create exists already.
        case alreadyExists
        /// The store cannot answer now; retrying later may succeed.
        case unavailable
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func invalidRequest(_ message: String) -> TokendError { .init(.invalidRequest, message) }
    public static func forbidden(_ message: String) -> TokendError { .init(.forbidden, message) }
    public static func notFound(_ message: String) -> TokendError { .init(.notFound, message) }
    public static func alreadyExists(_ message: String) -> TokendError { .init(.alreadyExists, message) }
    public static let unavailable = TokendError(.unavailable, "the token store is temporarily unavailable")
}
