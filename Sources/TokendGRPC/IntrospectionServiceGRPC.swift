import GRPCCore
import TokendAPI
import TokendCore
import TokendProto

/// `tokend.v1.IntrospectionService` over gRPC: the same Core calls as Connect and the form
/// endpoints, for callers authenticated by `authorization: Basic …` metadata.
struct IntrospectionServiceGRPC: Tokend_V1_IntrospectionService.ServiceProtocol {
    let tokend: Tokend

    func introspect(
        request: ServerRequest<Tokend_V1_IntrospectRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Tokend_V1_IntrospectResponse> {
        try await answering {
            let caller = try await tokend.authenticator.authenticate(basicAuthorization: request.metadata.authorization, source: peerAddress(context))
            let result = try await tokend.introspector.introspect(request.message.token.nonEmpty, caller: caller)
            return ServerResponse(message: Tokend_V1_IntrospectResponse(result))
        }
    }

    func revoke(
        request: ServerRequest<Tokend_V1_RevokeRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Tokend_V1_RevokeResponse> {
        try await answering {
            let caller = try await tokend.authenticator.authenticate(basicAuthorization: request.metadata.authorization, source: peerAddress(context))
            _ = try await tokend.revoker.revoke(request.message.token.nonEmpty, caller: caller)
            return ServerResponse(message: Tokend_V1_RevokeResponse())
        }
    }
}

/// `tokend.v1.TokenService` over gRPC, for callers with role `issue`.
struct TokenServiceGRPC: Tokend_V1_TokenService.ServiceProtocol {
    let tokend: Tokend

    func issueToken(
        request: ServerRequest<Tokend_V1_IssueTokenRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Tokend_V1_IssueTokenResponse> {
        try await answering {
            let caller = try await tokend.authenticator.authenticate(basicAuthorization: request.metadata.authorization, source: peerAddress(context))
            let issued = try await tokend.issuer.issue(IssueRequest(request.message), caller: caller)
            return ServerResponse(message: Tokend_V1_IssueTokenResponse(issued))
        }
    }

    func token(
        request: ServerRequest<Tokend_V1_TokenRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Tokend_V1_TokenResponse> {
        try await answering {
            let caller = try await tokend.authenticator.authenticate(basicAuthorization: request.metadata.authorization, source: peerAddress(context))
            let granted = try await tokend.granter.grant(TokenRequest(request.message), caller: caller)
            return ServerResponse(message: Tokend_V1_TokenResponse(granted))
        }
    }
}
