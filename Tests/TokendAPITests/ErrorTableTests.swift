import HTTPTypes
import Testing
import TokendAPI
import TokendCore

/// Every Core refusal and its answer in every dialect, listed once: a new code fails here until
/// each dialect's table says what it becomes.
@Suite struct ErrorTableTests {
    /// SPEC's answers: (HTTP status, OAuth `error`) and (HTTP status, Connect `code`).
    static let expected: [TokendError.Code: (oauth: (Int, String), connect: (Int, String))] = [
        .invalidRequest: ((400, "invalid_request"), (400, "invalid_argument")),
        .tooLarge: ((413, "invalid_request"), (413, "resource_exhausted")),
        .unauthenticated: ((401, "invalid_client"), (401, "unauthenticated")),
        .missingRole: ((403, "unauthorized_client"), (403, "permission_denied")),
        .notOwner: ((400, "unauthorized_client"), (403, "permission_denied")),
        .notFound: ((404, "not_found"), (404, "not_found")),
        .alreadyExists: ((409, "conflict"), (409, "already_exists")),
        .unavailable: ((503, "temporarily_unavailable"), (503, "unavailable")),
        .tooManyRequests: ((429, "too_many_requests"), (429, "resource_exhausted")),
        .invalidGrant: ((400, "invalid_grant"), (400, "invalid_argument")),
        .invalidScope: ((400, "invalid_scope"), (400, "invalid_argument")),
        .invalidTarget: ((400, "invalid_target"), (400, "invalid_argument")),
        .unsupportedGrantType: ((400, "unsupported_grant_type"), (400, "invalid_argument")),
        .unauthorizedClient: ((400, "unauthorized_client"), (403, "permission_denied")),
        .outOfRange: ((400, "invalid_request"), (400, "out_of_range")),
        .subscriberTooSlow: ((429, "too_many_requests"), (429, "resource_exhausted")),
    ]

    @Test(arguments: TokendError.Code.allCases)
    func everyCodeHasOneAnswerPerDialect(code: TokendError.Code) throws {
        let expected = try #require(Self.expected[code], "no expected answer listed for \(code)")
        let error = TokendError(code, "a message")

        let oauth = OAuthError(error)
        #expect(oauth.status.code == expected.oauth.0 && oauth.error == expected.oauth.1, "\(code): \(oauth.status.code) \(oauth.error)")
        #expect(oauth.errorDescription == "a message")

        let connect = ConnectError(error, challenge: #"Basic realm="tokend""#)
        #expect(
            connect.status.code == expected.connect.0 && connect.code.rawValue == expected.connect.1,
            "\(code): \(connect.status.code) \(connect.code.rawValue)"
        )
        #expect(connect.message == "a message")

        // RFC 6749 §5.2 and SPEC: a challenge with every 401; Retry-After with every 503.
        #expect((oauth.headers[.wwwAuthenticate] == #"Basic realm="tokend""#) == (code == .unauthenticated))
        #expect((connect.headers[.wwwAuthenticate] != nil) == (code == .unauthenticated))
        #expect((oauth.headers[.retryAfter] == "1") == (code == .unavailable))
        #expect((connect.headers[.retryAfter] == "1") == (code == .unavailable))
        // 429 carries the limiter's Retry-After.
        var limited = TokendError.tooManyRequests("slow down", retryAfter: 17)
        limited = code == .tooManyRequests ? limited : error
        #expect((OAuthError(limited).headers[.retryAfter] == "17") == (code == .tooManyRequests))
        #expect((ConnectError(limited).headers[.retryAfter] == "17") == (code == .tooManyRequests))
    }

    /// The Kubernetes webhook's answers: HTTP status and `metav1.StatusReason`.
    static let kubernetes: [TokendError.Code: (Int, String)] = [
        .invalidRequest: (400, "BadRequest"),
        .tooLarge: (413, "RequestEntityTooLarge"),
        .unauthenticated: (401, "Unauthorized"),
        .missingRole: (403, "Forbidden"),
        .notOwner: (403, "Forbidden"),
        .notFound: (404, "NotFound"),
        .alreadyExists: (409, "AlreadyExists"),
        .unavailable: (503, "ServiceUnavailable"),
        .tooManyRequests: (429, "TooManyRequests"),
        .invalidGrant: (400, "BadRequest"),
        .invalidScope: (400, "BadRequest"),
        .invalidTarget: (400, "BadRequest"),
        .unsupportedGrantType: (400, "BadRequest"),
        .unauthorizedClient: (403, "Forbidden"),
        .outOfRange: (400, "BadRequest"),
        .subscriberTooSlow: (429, "TooManyRequests"),
    ]

    @Test(arguments: TokendError.Code.allCases)
    func everyCodeHasOneKubernetesStatus(code: TokendError.Code) throws {
        let expected = try #require(Self.kubernetes[code], "no Kubernetes answer listed for \(code)")
        let status = KubernetesStatus(TokendError(code, "a message"))
        #expect(status.status.code == expected.0 && status.reason == expected.1, "\(code): \(status.status.code) \(status.reason)")
        #expect(status.message == "a message")
        #expect((status.headers[.wwwAuthenticate] == #"Basic realm="tokend""#) == (code == .unauthenticated))
        #expect((status.headers[.retryAfter] == "1") == (code == .unavailable))
    }

    /// `/authz` refuses a gateway through the OAuth table, with the gateway's own Basic realm.
    @Test(arguments: TokendError.Code.allCases)
    func gatewayRefusalsAreTheOAuthTableWithTheGatewayChallenge(code: TokendError.Code) {
        let error = TokendError(code, "a message")
        let plain = OAuthError(error)
        let gateway = OAuthError(error, challenge: #"Basic realm="tokend-gateway""#)
        #expect(gateway.status == plain.status && gateway.error == plain.error && gateway.errorDescription == plain.errorDescription)
        #expect((gateway.headers[.wwwAuthenticate] == #"Basic realm="tokend-gateway""#) == (code == .unauthenticated))
        #expect(gateway.headers[.retryAfter] == plain.headers[.retryAfter])
    }

    @Test func connectUnauthenticatedCarriesOnlyTheListenersChallenge() {
        // The admin listener authenticates with a bearer secret: no Basic challenge there.
        #expect(ConnectError(TokendError.unauthenticated).headers[.wwwAuthenticate] == nil)
    }
}
