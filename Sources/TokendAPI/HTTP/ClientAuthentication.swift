import Foundation
import HTTPTypes
import Hummingbird
import TokendCore
import TokendWire

/// Client credentials as presented (RFC 6749 §2.3.1): `client_secret_basic` or `client_secret_post`.
struct ClientCredentials: Sendable {
    var clientID: String
    var secret: String
}

/// Client credentials the HTTP fast path verified on a connection, as the header value they came
/// in (`Authorization`, or the gateway's `X-Tokend-Authorization`) with the cached client entry
/// that verified them: kept by that connection's handler, so that the same value presented again
/// on the connection is authenticated by `ClientAuthenticator.authenticateRemembered` (the entry
/// still current, the address not past the guessing limit) without another HMAC and Basic parse.
/// The value holds the secret: it lives only in the handler, goes when the connection does, is
/// never logged, and is compared in constant time (but for its length, which only the connection
/// that sent it can time).
struct RememberedCredential {
    let header: String
    let verified: ClientAuthenticator.Verified

    func matches(_ value: String) -> Bool {
        var mine = header
        var theirs = value
        return mine.withUTF8 { a in theirs.withUTF8 { b in constantTimeEqual(UnsafeRawBufferPointer(a), UnsafeRawBufferPointer(b)) } }
    }
}

enum ClientAuthentication {
    /// Extracts credentials from `Authorization: Basic` or, when `form` is given, from the
    /// `client_id`/`client_secret` form parameters. Using both methods at once is an
    /// `invalid_request` (RFC 6749 §2.3); none, or a malformed header, is `invalid_client`.
    static func credentials(headers: HTTPFields, form: FormBody?) throws -> ClientCredentials {
        let formSecret = form?["client_secret"]
        if let authorization = headers.value(.authorization) {
            if formSecret != nil {
                throw TokendError.invalidRequest("use exactly one client authentication method")
            }
            return try basic(authorization)
        }
        if let form, let id = form["client_id"], let secret = formSecret {
            return ClientCredentials(clientID: id, secret: secret)
        }
        throw TokendError(.unauthenticated, "client authentication required")
    }

    /// `client_secret_basic` (RFC 7617 Basic, RFC 6749 §2.3.1), parsed by `BasicCredentials`: another
    /// scheme and malformed credentials are both `invalid_client`, with different descriptions.
    static func basic(_ header: String) throws -> ClientCredentials {
        var header = header
        do {
            let (clientID, secret) = try header.withUTF8 { utf8 throws(WireError) in
                try BasicCredentials.parse(UnsafeRawBufferPointer(utf8))
            }
            return ClientCredentials(clientID: clientID, secret: secret)
        } catch let error as WireError where error == .notBasicScheme {
            throw TokendError(.unauthenticated, "use HTTP Basic client authentication")
        } catch {
            throw TokendError(.unauthenticated, "malformed Basic credentials")
        }
    }

    /// Authenticates the `credentials` presented (`TokendError.unauthenticated`, `.unavailable`, or
    /// `.tooManyRequests` past the guessing limits of the peer's address), and records the client for
    /// the access log. No or malformed credentials count as a failed authentication too.
    static func authenticate(
        with authenticator: ClientAuthenticator,
        context: TokendRequestContext,
        _ credentials: () throws -> ClientCredentials
    ) async throws -> ClientRecord {
        let presented: ClientCredentials
        do {
            presented = try credentials()
        } catch let error as TokendError where error.code == .unauthenticated {
            throw authenticator.failed(source: context.remoteAddress, error)
        }
        let client = try await authenticator.authenticate(clientID: presented.clientID, secret: presented.secret, source: context.remoteAddress)
        context.annotations.clientID = client.id
        return client
    }

    /// `Authorization: Basic` only (Connect and the other header-authenticated dialects).
    static func authenticateBasic(
        _ request: Request,
        with authenticator: ClientAuthenticator,
        context: TokendRequestContext
    ) async throws -> ClientRecord {
        try await authenticate(with: authenticator, context: context) {
            guard let header = request.headers[.authorization] else {
                throw TokendError(.unauthenticated, "client authentication required")
            }
            return try basic(header)
        }
    }
}

extension ClientAuthenticator {
    /// The caller of a dialect that carries credentials in one `authorization` value (gRPC
    /// metadata, `X-Tokend-Authorization`): `client_secret_basic` only. No value, another scheme or
    /// malformed credentials: `TokendError.unauthenticated`.
    /// `source` is the peer's IP address, for the guessing limits.
    public func authenticate(basicAuthorization header: String?, source: String?) async throws -> ClientRecord {
        let credentials: ClientCredentials
        do {
            guard let header else { throw TokendError(.unauthenticated, "client authentication required") }
            credentials = try ClientAuthentication.basic(header)
        } catch let error as TokendError where error.code == .unauthenticated {
            throw failed(source: source, error)
        }
        return try await authenticate(clientID: credentials.clientID, secret: credentials.secret, source: source)
    }
}
