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

enum ClientAuthentication {
    /// Extracts credentials from `Authorization: Basic` or, when `form` is given, from the
    /// `client_id`/`client_secret` form parameters. Using both methods at once is an
    /// `invalid_request` (RFC 6749 §2.3); none, or a malformed header, is `invalid_client`.
    static func credentials(headers: HTTPFields, form: FormBody?) throws -> ClientCredentials {
        let formSecret = form?["client_secret"]
        if let authorization = headers[.authorization] {
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

    /// Authenticates (`TokendError.unauthenticated` or `.unavailable` on failure) and records the
    /// client for the access log.
    static func authenticate(
        _ credentials: ClientCredentials,
        with authenticator: ClientAuthenticator,
        context: TokendRequestContext
    ) async throws -> ClientRecord {
        let client = try await authenticator.authenticate(clientID: credentials.clientID, secret: credentials.secret)
        context.annotations.clientID = client.id
        return client
    }

    /// `Authorization: Basic` only (Connect and the other header-authenticated dialects).
    static func authenticateBasic(
        _ request: Request,
        with authenticator: ClientAuthenticator,
        context: TokendRequestContext
    ) async throws -> ClientRecord {
        guard let header = request.headers[.authorization] else {
            throw TokendError(.unauthenticated, "client authentication required")
        }
        return try await authenticate(basic(header), with: authenticator, context: context)
    }
}

extension ClientAuthenticator {
    /// The caller of a dialect that carries credentials in one `authorization` value (gRPC
    /// metadata, `X-Tokend-Authorization`): `client_secret_basic` only. No value, another scheme or
    /// malformed credentials: `TokendError.unauthenticated`.
    public func authenticate(basicAuthorization header: String?) async throws -> ClientRecord {
        guard let header else { throw TokendError(.unauthenticated, "client authentication required") }
        let credentials = try ClientAuthentication.basic(header)
        return try await authenticate(clientID: credentials.clientID, secret: credentials.secret)
    }
}
