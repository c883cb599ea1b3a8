import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf
import TokendCore
import TokendProto

/// `tokend.v1.IntrospectionService` and `tokend.v1.TokenService` on the public listener: the same
/// Core calls as the form endpoints, for callers authenticated with `Authorization: Basic`.
struct PublicConnectController: Sendable {
    let authenticator: ClientAuthenticator
    let introspector: Introspector
    let revoker: Revoker
    let issuer: TokenIssuer
    let granter: TokenGranter

    static let challenge = #"Basic realm="tokend""#

    func register(on router: Router<TokendRequestContext>) {
        unary(router, "/tokend.v1.IntrospectionService/Introspect", Tokend_V1_IntrospectRequest.self) { m, caller in
            Tokend_V1_IntrospectResponse(try await introspector.introspect(m.token.nonEmpty, caller: caller))
        }
        unary(router, "/tokend.v1.IntrospectionService/Revoke", Tokend_V1_RevokeRequest.self) { m, caller in
            try await revoker.revoke(m.token.nonEmpty, caller: caller)
            return Tokend_V1_RevokeResponse()
        }
        unary(router, "/tokend.v1.TokenService/IssueToken", Tokend_V1_IssueTokenRequest.self) { m, caller in
            Tokend_V1_IssueTokenResponse(try await issuer.issue(IssueRequest(m), caller: caller))
        }
        unary(router, "/tokend.v1.TokenService/Token", Tokend_V1_TokenRequest.self) { m, caller in
            Tokend_V1_TokenResponse(try await granter.grant(TokenRequest(m), caller: caller))
        }
    }

    private func unary<Input: Message, Output: Message>(
        _ router: Router<TokendRequestContext>,
        _ path: String,
        _ input: Input.Type,
        _ handler: @escaping @Sendable (Input, ClientRecord) async throws -> Output
    ) {
        connectUnary(
            router,
            path,
            input,
            challenge: Self.challenge,
            authenticate: { [authenticator] request, context in
                try await ClientAuthentication.authenticateBasic(request, with: authenticator, context: context)
            },
            handler: handler
        )
    }
}

extension String {
    /// `nil` for the empty string: proto3 cannot tell an absent string field from an empty one.
    public var nonEmpty: String? { isEmpty ? nil : self }
}
