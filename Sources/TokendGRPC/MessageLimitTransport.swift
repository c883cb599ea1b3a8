import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// Wraps the HTTP/2 transport so that a request message over `limit` bytes fails its RPC with
/// `RESOURCE_EXHAUSTED` (SPEC: the gRPC dialect of the 64 KiB body limit). grpc-swift's own limit
/// (set higher, as a hard cap) resets the stream instead, which clients report as `CANCELLED`.
struct MessageLimitTransport: ServerTransport {
    typealias Base = HTTP2ServerTransport.Custom<TokendListenerFactory>
    typealias Bytes = Base.Bytes

    let base: Base
    let limit: Int

    var listeningAddress: GRPCNIOTransportHTTP2Posix.SocketAddress? {
        get async { await base.listeningAddress }
    }

    func configure(context: GRPCServerContext) { base.configure(context: context) }

    func listen(
        streamHandler: @escaping @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void
    ) async throws {
        let limit = self.limit
        try await base.listen { stream, context in
            let inbound = stream.inbound.map { part throws -> RPCRequestPart<Bytes> in
                if case .message(let bytes) = part, bytes.count > limit {
                    throw RPCError(code: .resourceExhausted, message: "the request message is over \(limit / 1024) KiB")
                }
                return part
            }
            let limited = RPCStream(descriptor: stream.descriptor, inbound: RPCAsyncSequence(wrapping: inbound), outbound: stream.outbound)
            await streamHandler(limited, context)
        }
    }

    func beginGracefulShutdown() { base.beginGracefulShutdown() }
}
