import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

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
                throw OAuthError.invalidRequest("use exactly one client authentication method")
            }
            return try basic(authorization)
        }
        if let form, let id = form["client_id"], let secret = formSecret {
            return ClientCredentials(clientID: id, secret: secret)
        }
        throw OAuthError.invalidClient("client authentication required")
    }

    /// RFC 7617 Basic with RFC 6749 §2.3.1's form-encoding of id and secret.
    static func basic(_ header: String) throws -> ClientCredentials {
        let malformed = OAuthError.invalidClient("malformed Basic credentials")
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic" else {
            throw OAuthError.invalidClient("use HTTP Basic client authentication")
        }
        let encoded = parts[1].drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
        guard parts[1].utf8.count <= 2048, let data = Data(base64Encoded: String(encoded)) else {
            throw malformed
        }
        let bytes = Array(data)
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { throw malformed }
        do {
            let id = try FormBody.decode(bytes[..<colon])
            let secret = try FormBody.decode(bytes[(colon + 1)...])
            guard !id.isEmpty else { throw malformed }
            return ClientCredentials(clientID: id, secret: secret)
        } catch is FormBody.ParseError {
            throw malformed
        }
    }

    /// Authenticates, mapping failures to OAuth errors, and records the client for the access log.
    static func authenticate(
        _ credentials: ClientCredentials, with authenticator: ClientAuthenticator, context: TokendRequestContext
    ) async throws -> ClientRecord {
        do {
            let client = try await authenticator.authenticate(clientID: credentials.clientID, secret: credentials.secret)
            context.annotations.clientID = client.id
            return client
        } catch let error as TokendError where error.code == .unauthenticated {
            throw OAuthError.invalidClient()
        } catch let error as TokendError where error.code == .unavailable {
            throw OAuthError.temporarilyUnavailable()
        }
    }
}
