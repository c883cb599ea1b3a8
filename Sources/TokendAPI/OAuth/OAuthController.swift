import Foundation
import HTTPTypes
import Hummingbird
import TokendCore
import TokendWire

/// RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata over form-encoded HTTP.
/// Each handler parses the form, authenticates the caller, calls one Core function and renders;
/// every `TokendError` becomes its answer through `OAuthError`'s table.
struct OAuthController: Sendable {
    let authenticator: ClientAuthenticator
    let introspector: Introspector
    let revoker: Revoker
    let issuer: IssuerIdentifier

    func register(on router: Router<TokendRequestContext>) {
        router.post("/oauth2/introspect", use: oauth(introspect))
        router.post("/oauth2/revoke", use: oauth(revoke))
        router.get("/.well-known/oauth-authorization-server", use: metadata)
        for path in ["/oauth2/introspect", "/oauth2/revoke"] {
            for method in [HTTPRequest.Method.get, .put, .delete] {
                router.on(RouterPath(path), method: method) { _, _ -> Response in throw Self.methodNotAllowed }
            }
        }
    }

    static let methodNotAllowed = OAuthError(
        status: .methodNotAllowed,
        error: "invalid_request",
        description: "use POST",
        headers: [.allow: "POST"]
    )

    /// RFC 7662 §2.1–2.3.
    @Sendable func introspect(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let form = try await Self.readForm(request)
        let caller = try await authenticate(request, form: form, context: context)
        return IntrospectionJSON.response(try await introspector.introspect(form["token"], caller: caller))
    }

    /// RFC 7009 §2.1–2.2: 200 with an empty body for revoked, already revoked and unknown tokens.
    @Sendable func revoke(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let form = try await Self.readForm(request)
        let caller = try await authenticate(request, form: form, context: context)
        try await revoker.revoke(form["token"], caller: caller)
        return Response(status: .ok, headers: [.cacheControl: "no-store"], body: .init())
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
        let issuerURL = issuer.current
        let base = issuerURL.hasSuffix("/") ? String(issuerURL.dropLast()) : issuerURL
        var response = JSONBody.response(
            Metadata(
                issuer: issuerURL,
                introspection_endpoint: base + "/oauth2/introspect",
                introspection_endpoint_auth_methods_supported: methods,
                revocation_endpoint: base + "/oauth2/revoke",
                revocation_endpoint_auth_methods_supported: methods
            )
        )
        response.headers[.cacheControl] = "public, max-age=300"
        return response
    }

    /// `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1).
    private func authenticate(_ request: Request, form: FormBody, context: TokendRequestContext) async throws -> ClientRecord {
        try await ClientAuthentication.authenticate(with: authenticator, context: context) {
            try ClientAuthentication.credentials(headers: request.headers, form: form)
        }
    }

    /// Renders every Core error of `handler` through the OAuth table.
    private func oauth(
        _ handler: @escaping @Sendable (Request, TokendRequestContext) async throws -> Response
    ) -> @Sendable (Request, TokendRequestContext) async throws -> Response {
        { request, context in
            do {
                return try await handler(request, context)
            } catch let error as TokendError {
                throw OAuthError(error)
            }
        }
    }

    /// Reads a form body: the content type must be `application/x-www-form-urlencoded`.
    static func readForm(_ request: Request) async throws -> FormBody {
        guard MediaType.is(request.headers[.contentType], "application/x-www-form-urlencoded") else {
            throw TokendError.invalidRequest("the request body must be application/x-www-form-urlencoded")
        }
        let body = try await RequestBody.collect(request)
        do {
            return try body.withUnsafeReadableBytes { try FormBody(bytes: $0) }
        } catch let error as WireError {
            throw TokendError.invalidRequest(error.description)
        }
    }
}
