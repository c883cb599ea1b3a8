import GRPCCore
import TokendAPI
import TokendCore
import TokendProto

/// `tokend.v1.RevocationService/Watch` over gRPC: the revocation log as a server stream
/// (`Replica.watch`). No heartbeat messages: HTTP/2 keepalive pings keep the connection honest, and
/// the stream ends with `UNAVAILABLE` once this replica's view is stale or it drains.
struct RevocationServiceGRPC: Tokend_V1_RevocationService.ServiceProtocol {
    let tokend: Tokend

    func watch(
        request: ServerRequest<Tokend_V1_WatchRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Tokend_V1_RevocationEvent> {
        let caller = try await answering {
            try await tokend.authenticator.authenticate(basicAuthorization: request.metadata.authorization, source: peerAddress(context))
        }
        let after = request.message.afterSeq
        let cancellation = context.cancellation
        return StreamingServerResponse { writer in
            try await answering {
                // gRPC does not cancel this task when the caller goes away; its handle says so.
                try await tokend.replica.watch(after: after, caller: caller, callerGone: { try? await cancellation.cancelled }) { entry in
                    try await writer.write(Tokend_V1_RevocationEvent(entry))
                }
            }
            return [:]
        }
    }
}
