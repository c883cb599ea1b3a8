import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

/// RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata over form-encoded HTTP.
/// Translates HTTP to Core calls and back; the policy lives in `Introspector` and `Revoker`.
struct OAuthController: Sendable {
    let services: TokendServices

    func register(on router: Router<TokendRequestContext>) {
        router.post("/oauth2/introspect", use: introspect)
        router.post("/oauth2/revoke", use: revoke)
        router.get("/.well-known/oauth-authorization-server", use: metadata)
        for path in ["/oauth2/introspect", "/oauth2/revoke"] {
            router.on(RouterPath(path), method: .get) { _, _ -> Response in throw Self.methodNotAllowed }
            router.on(RouterPath(path), method: .put) { _, _ -> Response in throw Self.methodNotAllowed }
            router.on(RouterPath(path), method: .delete) { _, _ -> Response in throw Self.methodNotAllowed }
        }
    }

    static let methodNotAllowed: OAuthError = {
        var headers = HTTPFields()
        headers[.allow] = "POST"
        return OAuthError(status: .methodNotAllowed, error: "invalid_request", description: "use POST", headers: headers)
    }()

    /// RFC 7662 §2.1–2.3.
    @Sendable func introspect(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let form = try await Self.readForm(request)
        let caller = try await ClientAuthentication.authenticate(
            ClientAuthentication.credentials(headers: request.headers, form: form), with: services.authenticator, context: context)
        guard caller.roles.contains(.introspect) else {
            throw OAuthError(status: .forbidden, error: "unauthorized_client", description: "this client may not introspect tokens")
        }
        guard let token = form["token"] else { throw OAuthError.invalidRequest("the token parameter is required") }
        do {
            let (result, source) = try await services.introspector.answer(token: token, audiences: caller.audiences)
            services.metrics.introspection(result.metricLabel, source: source.rawValue)
            return IntrospectionJSON.response(result)
        } catch let error as TokendError where error.code == .unavailable {
            services.metrics.introspection("unavailable", source: "store")
            throw OAuthError.temporarilyUnavailable()
        }
    }

    /// RFC 7009 §2.1–2.2. 200 with an empty body for revoked, already revoked and unknown tokens.
    @Sendable func revoke(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let form = try await Self.readForm(request)
        let caller = try await ClientAuthentication.authenticate(
            ClientAuthentication.credentials(headers: request.headers, form: form), with: services.authenticator, context: context)
        guard let token = form["token"] else { throw OAuthError.invalidRequest("the token parameter is required") }
        do {
            services.metrics.revoked(try await services.revoker.revoke(token: token, caller: caller).revoked)
        } catch let error as TokendError {
            switch error.code {
            case .forbidden:
                throw OAuthError(status: .badRequest, error: "unauthorized_client", description: "the token was not issued to this client")
            case .unavailable:
                throw OAuthError.temporarilyUnavailable()
            default:
                throw OAuthError.invalidRequest(error.message)
            }
        }
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init())
    }

    /// RFC 8414 §2 subset.
    @Sendable func metadata(_ request: Request, context: TokendRequestContext) async throws -> Response {
        struct Metadata: Encodable {
            let issuer: String
            let introspection_endpoint: String
            let introspection_endpoint_auth_methods_supported: [String]
            let revocation_endpoint: String
            let revocation_endpoint_auth_methods_supported: [String]
        }
        let methods = ["client_secret_basic", "client_secret_post"]
        let base = services.issuerURL.hasSuffix("/") ? String(services.issuerURL.dropLast()) : services.issuerURL
        var response = JSONBody.response(Metadata(
            issuer: services.issuerURL,
            introspection_endpoint: base + "/oauth2/introspect",
            introspection_endpoint_auth_methods_supported: methods,
            revocation_endpoint: base + "/oauth2/revoke",
            revocation_endpoint_auth_methods_supported: methods))
        response.headers[.cacheControl] = "public, max-age=300"
        return response
    }

    /// Reads a form body: the content type must be `application/x-www-form-urlencoded`.
    static func readForm(_ request: Request) async throws -> FormBody {
        guard MediaType.is(request.headers[.contentType], "application/x-www-form-urlencoded") else {
            throw OAuthError.invalidRequest("the request body must be application/x-www-form-urlencoded")
        }
        let body = try await request.body.collect(upTo: ConnectCodec.maximumBodySize)
        do {
            return try body.withUnsafeReadableBytes { try FormBody(bytes: $0) }
        } catch let error as FormBody.ParseError {
            throw OAuthError.invalidRequest(error.description)
        }
    }
}
