import GRPCCore
import Testing
import TokendCore
import TokendGRPC

/// The gRPC dialect's row of the error table: every `TokendError.Code` and the status it answers
/// (SPEC "gRPC listener"). A new code fails here until the dialect says what it means.
@Suite struct RPCErrorTableTests {
    static let table: [TokendError.Code: RPCError.Code] = [
        .invalidRequest: .invalidArgument,
        .tooLarge: .resourceExhausted,
        .unauthenticated: .unauthenticated,
        .missingRole: .permissionDenied,
        .notOwner: .permissionDenied,
        .notFound: .notFound,
        .alreadyExists: .alreadyExists,
        .unavailable: .unavailable,
        .tooManyRequests: .resourceExhausted,
        .invalidGrant: .invalidArgument,
        .invalidScope: .invalidArgument,
        .invalidTarget: .invalidArgument,
        .unsupportedGrantType: .invalidArgument,
        .unauthorizedClient: .permissionDenied,
        .outOfRange: .outOfRange,
        .subscriberTooSlow: .resourceExhausted,
    ]

    @Test(arguments: TokendError.Code.allCases)
    func everyCodeHasItsStatus(code: TokendError.Code) throws {
        let expected = try #require(Self.table[code], "no gRPC status listed for \(code)")
        let error = RPCError(TokendError(code, "what went wrong"))
        #expect(error.code == expected)
        #expect(error.message == "what went wrong")
    }
}
