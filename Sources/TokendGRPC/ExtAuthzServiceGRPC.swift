import GRPCCore
import SwiftProtobuf
import TokendAPI
import TokendCore
import TokendProto

/// Envoy's gRPC `ext_authz` (`envoy.service.auth.v3.Authorization/Check`): the gateway decision of
/// `/authz`, rendered as a `CheckResponse`.
///
/// The gateway authenticates with `authorization: Basic …` call metadata (Envoy's
/// `initial_metadata`); a missing or wrong credential fails the RPC (`UNAUTHENTICATED`, or
/// `PERMISSION_DENIED` without role `introspect`), and so does a store that cannot answer
/// (`UNAVAILABLE`: Envoy fails closed). The end user's token is the request's `authorization`
/// header; the route's context extensions `audience` and `scope` narrow as `/authz`'s query does.
struct ExtAuthzServiceGRPC: Envoy_Service_Auth_V3_Authorization.ServiceProtocol {
    let tokend: Tokend

    func check(
        request: ServerRequest<Envoy_Service_Auth_V3_CheckRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Envoy_Service_Auth_V3_CheckResponse> {
        try await answering {
            let gateway = try await tokend.authenticator.authenticate(basicAuthorization: request.metadata.authorization, source: peerAddress(context))
            let attributes = request.message.attributes
            let headers = attributes.request.http.headersByLowercasedName
            let requirements = GatewayRequirements(
                audience: attributes.contextExtensions["audience"],
                scope: attributes.contextExtensions["scope"]
            )
            let decision = try await tokend.introspector.authorize(
                BearerPresentation(authorization: headers["authorization"]),
                caller: gateway,
                requirements: requirements
            )
            return ServerResponse(message: Self.response(GatewayAnswer(decision), requestHeaders: headers))
        }
    }

    static func response(_ answer: GatewayAnswer, requestHeaders: [String: String]) -> Envoy_Service_Auth_V3_CheckResponse {
        var response = Envoy_Service_Auth_V3_CheckResponse()
        switch answer.status {
        case 200:
            response.status.code = 0  // OK
            response.okResponse = .with { ok in
                ok.headers = answer.upstreamHeaders.map { header in
                    .with {
                        $0.header = .with {
                            $0.key = header.name
                            $0.value = header.value
                        }
                        // Overwrite: a client's own x-tokend-* header never reaches the upstream.
                        $0.append = .with { $0.value = false }
                    }
                }
                let set = Set(answer.upstreamHeaders.map(\.name))
                ok.headersToRemove = GatewayAnswer.upstreamHeaderNames.filter { !set.contains($0) && requestHeaders[$0] != nil }
            }
        default:
            let forbidden = answer.status == 403
            response.status.code = Int32((forbidden ? RPCError.Code.permissionDenied : RPCError.Code.unauthenticated).rawValue)
            response.status.message = forbidden ? "insufficient scope" : "token missing or not active"
            response.deniedResponse = .with { denied in
                denied.status.code = Int32(answer.status)
                if let challenge = answer.challenge {
                    denied.headers = [
                        .with {
                            $0.header = .with {
                                $0.key = "www-authenticate"
                                $0.value = challenge
                            }
                            $0.append = .with { $0.value = false }
                        }
                    ]
                }
            }
        }
        return response
    }
}
