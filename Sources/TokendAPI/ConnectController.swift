import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf
import TokendCore
import TokendProto

/// Registers one Connect unary method: authenticate the caller, decode, call, encode, with Core
/// errors mapped to Connect errors.
func connectUnary<Input: Message, Output: Message, Caller: Sendable>(
    _ router: Router<TokendRequestContext>, _ path: String, _ input: Input.Type,
    authenticate: @escaping @Sendable (Request, TokendRequestContext) async throws -> Caller,
    handler: @escaping @Sendable (Input, Caller) async throws -> Output
) {
    router.post(RouterPath(path)) { request, context -> Response in
        do {
            let caller = try await authenticate(request, context)
            let (message, codec) = try await ConnectCodec.decode(Input.self, from: request)
            let output = try await handler(message, caller)
            return try codec.response(output, for: request)
        } catch let error as TokendError {
            throw ConnectError.from(error)
        }
    }
}

/// `tokend.v1.IntrospectionService` and `tokend.v1.TokenService` on the public listener: the same
/// operations as the form endpoints, for callers authenticated with `Authorization: Basic`.
struct PublicConnectController: Sendable {
    let services: TokendServices

    func register(on router: Router<TokendRequestContext>) {
        connectUnary(router, "/tokend.v1.IntrospectionService/Introspect", Tokend_V1_IntrospectRequest.self, authenticate: authenticate) { m, caller in
            guard caller.roles.contains(.introspect) else {
                throw ConnectError(.permissionDenied, "this client may not introspect tokens")
            }
            guard !m.token.isEmpty else { throw ConnectError(.invalidArgument, "token is required") }
            let (result, source) = try await services.introspector.answer(token: m.token, audiences: caller.audiences)
            services.metrics.introspection(result.metricLabel, source: source.rawValue)
            return Tokend_V1_IntrospectResponse(result)
        }
        connectUnary(router, "/tokend.v1.IntrospectionService/Revoke", Tokend_V1_RevokeRequest.self, authenticate: authenticate) { m, caller in
            guard !m.token.isEmpty else { throw ConnectError(.invalidArgument, "token is required") }
            services.metrics.revoked(try await services.revoker.revoke(token: m.token, caller: caller).revoked)
            return Tokend_V1_RevokeResponse()
        }
        connectUnary(router, "/tokend.v1.TokenService/IssueToken", Tokend_V1_IssueTokenRequest.self, authenticate: authenticate) { m, caller in
            guard caller.roles.contains(.issue) else { throw ConnectError(.permissionDenied, "this client may not issue tokens") }
            guard m.grantID.isEmpty else {
                throw ConnectError(.invalidArgument, "issuing under an existing grant_id is not supported; omit grant_id")
            }
            let clientID = m.clientID.isEmpty ? caller.id : m.clientID
            return Tokend_V1_IssueTokenResponse(try await services.issuer.issue(IssueRequest(m, clientID: clientID)))
        }
    }

    @Sendable private func authenticate(_ request: Request, _ context: TokendRequestContext) async throws -> ClientRecord {
        do {
            guard let header = request.headers[.authorization] else {
                throw OAuthError.invalidClient("client authentication required")
            }
            return try await ClientAuthentication.authenticate(
                ClientAuthentication.basic(header), with: services.authenticator, context: context)
        } catch let error as OAuthError {
            var headers = HTTPFields()
            if error.status == .serviceUnavailable {
                headers[.retryAfter] = "1"
                throw ConnectError(.unavailable, "the token store is temporarily unavailable", headers: headers)
            }
            headers[.wwwAuthenticate] = "Basic realm=\"tokend\""
            throw ConnectError(.unauthenticated, error.errorDescription ?? "client authentication failed", headers: headers)
        }
    }
}
