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
    }

    @Test func connectUnauthenticatedCarriesOnlyTheListenersChallenge() {
        // The admin listener authenticates with a bearer secret: no Basic challenge there.
        #expect(ConnectError(TokendError.unauthenticated).headers[.wwwAuthenticate] == nil)
    }
}
