import HTTPTypes
import Hummingbird
import TokendCore
import TokendWire

/// `/authz`: forward authentication for gateways (nginx `auth_request`, Traefik `forwardAuth`,
/// Envoy HTTP `ext_authz`), SPEC "Public listener".
///
/// Parses the gateway's requirements from the query, authenticates the gateway from
/// `X-Tokend-Authorization: Basic …`, makes one `Introspector.authorize` call with the end user's
/// `Authorization: Bearer …` (RFC 6750 §2.1) and renders its `GatewayAnswer`: `200` with the
/// `X-Tokend-*` headers, or `401`/`403` with the RFC 6750 §3 challenge, every one with an empty
/// body and `Cache-Control: no-store`. The gateway's own refusals (credentials, role, a malformed
/// query, the store) are OAuth JSON through `OAuthError`'s table, with the gateway's challenge.
/// Request bodies are never read.
struct ForwardAuthController: Sendable {
    let authenticator: ClientAuthenticator
    let introspector: Introspector

    /// The route's name in the access log and the request metrics, for every path below it too.
    static let route = "/authz"
    /// Where the gateway puts its own credentials (the end user's are in `Authorization`).
    static let gatewayCredentials = HTTPField.Name("X-Tokend-Authorization")!
    /// The 401 challenge for missing or wrong gateway credentials.
    static let gatewayChallenge = #"Basic realm="tokend-gateway""#

    /// Adds `/authz` (every method, and every path below `/authz/`) to `router`. Register it after
    /// every route: see `Route`.
    func register(on router: Router<TokendRequestContext>) {
        router.add(middleware: Route(controller: self))
    }

    /// SPEC `/authz`: parse → authenticate the gateway → `Introspector.authorize` → render.
    func authorize(_ request: Request, context: TokendRequestContext) async throws -> Response {
        do {
            let requirements = try Self.requirements(query: request.uri.query)
            let gateway = try await ClientAuthentication.authenticate(with: authenticator, context: context) {
                try Self.gatewayCredentials(request.headers)
            }
            let decision = try await introspector.authorize(
                BearerPresentation(authorization: request.headers.value(.authorization)),
                caller: gateway,
                requirements: requirements
            )
            return Self.response(GatewayAnswer(decision))
        } catch let error as TokendError {
            throw OAuthError(error, challenge: Self.gatewayChallenge)
        }
    }

    /// The gateway's own credentials, from `X-Tokend-Authorization: Basic …`
    /// (`TokendError.unauthenticated` when absent or malformed).
    static func gatewayCredentials(_ headers: HTTPFields) throws -> ClientCredentials {
        guard let credentials = headers.value(Self.gatewayCredentials) else {
            throw TokendError(.unauthenticated, "gateway authentication required (X-Tokend-Authorization: Basic)")
        }
        return try ClientAuthentication.basic(credentials)
    }

    /// `audience=` and `scope=` from the query; every other parameter is ignored, since Envoy's
    /// HTTP `ext_authz` appends the original request's path and query after `/authz`. Each of the
    /// two at most once, an audience as a client's audiences are checked, the scope as RFC 6749
    /// §3.3 scope tokens; empty means absent.
    static func requirements(query: String?) throws -> GatewayRequirements {
        guard var query, !query.isEmpty else { return GatewayRequirements(audience: nil, scope: nil) }
        let parameters: FormBody
        do {
            parameters = try query.withUTF8 { utf8 throws(WireError) in
                try FormBody(bytes: UnsafeRawBufferPointer(utf8), only: Self.requirementNames)
            }
        } catch let error as WireError {
            throw TokendError.invalidRequest(error.description)
        }
        let requirements = GatewayRequirements(audience: parameters["audience"], scope: parameters["scope"])
        if let audience = requirements.audience { try Validation.audiences([audience]) }
        if let scope = parameters["scope"], !scope.isEmpty { try Validation.scope(scope) }
        return requirements
    }

    /// `GatewayAnswer.upstreamHeaderNames` as field names (validated and lower-cased once).
    private static let upstreamFieldNames: [String: HTTPField.Name] = Dictionary(
        uniqueKeysWithValues: GatewayAnswer.upstreamHeaderNames.map { ($0, HTTPField.Name($0)!) }
    )

    /// The query parameters `requirements(query:)` reads.
    private static let requirementNames: Set<String> = ["audience", "scope"]

    /// The answer to the gateway: status, upstream headers, challenge; no body.
    static func response(_ answer: GatewayAnswer) -> Response {
        var headers: HTTPFields = [.cacheControl: "no-store"]
        for header in answer.upstreamHeaders {
            // GatewayAnswer's names are fixed lower-case header names, made into field names once.
            headers.append(HTTPField(name: Self.upstreamFieldNames[header.name] ?? HTTPField.Name(header.name)!, value: header.value))
        }
        if let challenge = answer.challenge { headers[.wwwAuthenticate] = challenge }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: .init())
    }

    /// Serves `/authz` and every path below `/authz/`, whatever the method. Hummingbird's router
    /// matches (path, method) pairs, while a gateway forwards any method (Envoy passes the original
    /// one, WebDAV's `PROPFIND` included), so this is a middleware rather than a route. Added after
    /// every route, it wraps only the router's not-found answer and costs the routed requests
    /// nothing; it names the route `/authz` for the access log and the metrics.
    struct Route: RouterMiddleware {
        typealias Context = TokendRequestContext
        let controller: ForwardAuthController

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            let path = request.uri.path
            guard path == ForwardAuthController.route || path.hasPrefix(ForwardAuthController.route + "/") else {
                return try await next(request, context)
            }
            context.coreContext.endpointPath.value = ForwardAuthController.route
            return try await controller.authorize(request, context: context)
        }
    }
}
