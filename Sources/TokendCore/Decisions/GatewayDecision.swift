/// What a gateway asks of tokend for one request at its edge (`/authz`, Envoy `ext_authz`).
public struct GatewayRequirements: Sendable, Equatable {
    /// The end user's token must carry this audience (on top of the gateway client's audiences).
    public var audience: String?
    /// Every one of these scopes must be in the token's `scope`.
    public var scopes: [String]

    public init(audience: String? = nil, scopes: [String] = []) {
        self.audience = audience
        self.scopes = scopes
    }

    /// `audience` and `scope` as they come from a query string or Envoy's context extensions:
    /// empty means absent, and `scope` is space-separated (RFC 6749 §3.3).
    public init(audience: String?, scope: String?) {
        self.audience = (audience?.isEmpty ?? true) ? nil : audience
        self.scopes = (scope ?? "").split(separator: " ").map(String.init)
    }
}

/// The end user's credential as the gateway saw it (RFC 6750 §2.1).
public enum BearerPresentation: Sendable, Equatable {
    /// No `Authorization` header, or one with another scheme.
    case absent
    /// `Bearer` with the token (possibly empty or malformed: then the token is invalid).
    case token(String)
}

/// A gateway's answer for one request. Every dialect renders these four the same way:
/// allowed → pass with the `X-Tokend-*` headers; `missingToken` / `invalidToken` → 401 with a
/// Bearer challenge; `insufficientScope` → 403.
public enum GatewayDecision: Sendable, Equatable {
    case allowed(TokenRecord)
    /// No bearer token was presented: challenge without an error code (RFC 6750 §3.1).
    case missingToken
    /// A token was presented and is not active for this gateway: `error="invalid_token"`.
    case invalidToken
    /// Active, but without every required scope: `error="insufficient_scope"`, `scope=` the requirement.
    case insufficientScope(required: [String])
}

extension Introspector {
    /// The gateway decision: the gateway `caller` needs role `introspect` (`TokendError.missingRole`)
    /// and its audiences apply; `requirements` narrow further. Only a plain bearer access token
    /// passes (see `isBearerAccessToken`). Throws `TokendError.unavailable` when the store cannot
    /// answer, so that a gateway fails closed.
    public func authorize(
        _ bearer: BearerPresentation,
        caller: ClientRecord,
        requirements: GatewayRequirements
    ) async throws -> GatewayDecision {
        guard caller.roles.contains(.introspect) else { throw TokendError.missingRole("this client may not introspect tokens") }
        guard case .token(let token) = bearer else { return .missingToken }
        guard !token.isEmpty else { return .invalidToken }
        return Self.decide(try await introspect(token, caller: caller), requirements: requirements)
    }

    /// `authorize` when memory alone can decide, synchronously (`introspectFromMemory`); `nil`
    /// when it cannot, and then `authorize` must be asked. For the HTTP fast path.
    public func authorizeFromMemory(
        _ bearer: BearerPresentation,
        caller: ClientRecord,
        requirements: GatewayRequirements
    ) -> GatewayDecision? {
        guard caller.roles.contains(.introspect) else { return nil }
        guard case .token(let token) = bearer else { return .missingToken }
        guard !token.isEmpty else { return .invalidToken }
        return introspectFromMemory(token, caller: caller).map { Self.decide($0, requirements: requirements) }
    }

    /// The decision on an introspection's result.
    private static func decide(_ result: IntrospectionResult, requirements: GatewayRequirements) -> GatewayDecision {
        guard case .active(let record) = result, isBearerAccessToken(record) else { return .invalidToken }
        if let audience = requirements.audience, !record.audiences.contains(audience) { return .invalidToken }
        // Most gateways require no scope: then no set of the granted ones is built.
        if !requirements.scopes.isEmpty {
            let granted = Set((record.scope ?? "").split(separator: " ").map(String.init))
            if !requirements.scopes.allSatisfy(granted.contains) { return .insufficientScope(required: requirements.scopes) }
        }
        return .allowed(record)
    }

    /// Kubernetes TokenReview: the active record and the audiences it is authenticated for.
    /// With `audiences` non-empty, the token is authenticated only if its `aud` intersects them,
    /// and `audiences` of the answer is that intersection (in the request's order); with none, the
    /// answer's audiences are empty. The caller needs role `introspect`; its own audiences apply.
    /// Only a plain bearer access token with a `sub` authenticates: Kubernetes names the user by it.
    public func review(_ token: String, caller: ClientRecord, audiences: [String]) async throws -> (record: TokenRecord, audiences: [String])? {
        guard case .active(let record) = try await introspect(token, caller: caller), Self.isBearerAccessToken(record),
            !(record.subject ?? "").isEmpty
        else { return nil }
        guard !audiences.isEmpty else { return (record, []) }
        let granted = audiences.filter(record.audiences.contains)
        guard !granted.isEmpty else { return nil }
        return (record, granted)
    }

    /// Whether a gateway or Kubernetes may accept `record` from a bearer alone (RFC 6750): an
    /// access token without a `cnf` binding. A refresh token is for the token endpoint only
    /// (RFC 6749 §1.5), and a DPoP- or certificate-bound token (RFC 9449, RFC 8705) must come
    /// with a proof of possession that none of these dialects checks, so accepting it as a plain
    /// bearer token would undo the binding.
    public static func isBearerAccessToken(_ record: TokenRecord) -> Bool {
        record.kind == .access && (record.confirmation?.isEmpty ?? true)
    }
}
