import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TokendCore
import TokendWire

/// RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata over form-encoded HTTP.
/// Each handler parses the form, authenticates the caller, calls one Core function and renders;
/// every `TokendError` becomes its answer through `OAuthError`'s table.
struct OAuthController: Sendable {
    let authenticator: ClientAuthenticator
    let introspector: Introspector
    let revoker: Revoker
    let granter: TokenGranter
    let signingKeys: SigningKeyRing
    let issuer: IssuerIdentifier
    /// RFC 7662's endpoint (the HTTP fast path answers there too: `IntrospectionFastPath`).
    static let introspectPath = "/oauth2/introspect"
    /// Signed answers for reuse (`SignedAnswerCache`); one per router, so per replica.
    let signedAnswers = SignedAnswerCache()

    func register(on router: Router<TokendRequestContext>) {
        router.post(RouterPath(Self.introspectPath), use: oauth(introspect))
        router.post("/oauth2/revoke", use: oauth(revoke))
        router.post("/oauth2/token", use: oauth(token))
        router.get("/.well-known/oauth-authorization-server", use: metadata)
        router.get("/.well-known/jwks.json", use: oauth(jwks))
        for path in [Self.introspectPath, "/oauth2/revoke", "/oauth2/token"] {
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
        let result = try await introspector.introspect(form["token"], caller: caller)
        if Self.wantsJWT(request.headers.value(.accept)) {
            return try await SignedIntrospection.response(
                result,
                caller: caller,
                issuer: issuer.current,
                keys: signingKeys,
                cache: signedAnswers
            )
        }
        return IntrospectionJSON.response(result)
    }

    /// RFC 9701 §4 by RFC 9110 q-values: the JWT only when the caller weighs it above JSON.
    static func wantsJWT(_ accept: String?) -> Bool {
        guard let accept else { return false }
        return AcceptHeader.quality(of: SignedIntrospection.mediaType, in: accept) > AcceptHeader.quality(of: "application/json", in: accept)
    }

    /// RFC 6749 §5: `client_credentials` and `refresh_token` (rotated). RFC 8707 `resource` may
    /// repeat, and so may `audience`; every other parameter only once.
    @Sendable func token(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let form = try await Self.readForm(request, repeatable: ["resource", "audience"])
        let caller = try await authenticate(request, form: form, context: context)
        let granted = try await granter.grant(
            TokenRequest(
                grantType: form["grant_type"],
                scope: form["scope"],
                refreshToken: form["refresh_token"],
                targets: form.values("audience") + form.values("resource")
            ),
            caller: caller
        )
        return TokenResponseJSON.response(granted)
    }

    /// RFC 7517 JWK Set of the keys that verify signed introspection answers.
    @Sendable func jwks(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let keys = try await signingKeys.published()
        var response = JSONBody.response(["keys": keys.map(\.publicJWK)])
        // Short: a rotation must reach verifiers well within the overlap.
        response.headers[.cacheControl] = "public, max-age=60"
        return response
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
            let token_endpoint: String
            let token_endpoint_auth_methods_supported: [String]
            let grant_types_supported: [String]
            let jwks_uri: String
            let introspection_signing_alg_values_supported: [String]
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
                revocation_endpoint_auth_methods_supported: methods,
                token_endpoint: base + "/oauth2/token",
                token_endpoint_auth_methods_supported: methods,
                grant_types_supported: TokenGranter.grantTypes,
                jwks_uri: base + "/.well-known/jwks.json",
                introspection_signing_alg_values_supported: [SigningKey.algorithm]
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
    static func readForm(_ request: Request, repeatable: Set<String> = []) async throws -> FormBody {
        try checkFormContentType(request.headers)
        return try form(try await RequestBody.collect(request), repeatable: repeatable)
    }

    /// The content type a form body must have (`TokendError.invalidRequest` otherwise).
    static func checkFormContentType(_ headers: HTTPFields) throws {
        guard MediaType.is(headers.value(.contentType), "application/x-www-form-urlencoded") else {
            throw TokendError.invalidRequest("the request body must be application/x-www-form-urlencoded")
        }
    }

    /// A collected form body, parsed (`TokendError.invalidRequest` when malformed).
    static func form(_ body: ByteBuffer, repeatable: Set<String> = []) throws -> FormBody {
        do {
            return try body.withUnsafeReadableBytes { repeatable.isEmpty ? try FormBody(bytes: $0) : try FormBody(bytes: $0, repeatable: repeatable) }
        } catch let error as WireError {
            throw TokendError.invalidRequest(error.description)
        }
    }
}
