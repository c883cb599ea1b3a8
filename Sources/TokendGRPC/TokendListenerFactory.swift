import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import NIOSSL
import TokendAPI

/// Accepts the gRPC listener's connections: h2c, or TLS with ALPN `h2` from the same
/// `TLSCertificateSource` as the HTTP listeners, so that a reloaded certificate serves every
/// connection accepted after the reload (grpc-swift's own Posix transport fixes its TLS context
/// at start).
///
/// A connection that has sent nothing for `readIdleLimit` is closed. grpc-swift pings a quiet
/// peer (keepalive), so a live one always answers within that limit; but on a ping that goes
/// unanswered grpc-swift-nio-transport 2.9 only starts a graceful shutdown that itself waits for
/// a ping's answer, so a peer that holds its socket without reading would keep its connection
/// (and its streams) for ever.
struct TokendListenerFactory: HTTP2ServerTransport.ListenerFactory {
    let host: String
    let port: Int
    let tls: TLSCertificateSource?
    let eventLoopGroup: any EventLoopGroup
    let readIdleLimit: TimeAmount

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let tls = self.tls
        let readIdleLimit = self.readIdleLimit
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in listenerConfigurator.configure(channel: channel) }
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(IdleStateHandler(readTimeout: readIdleLimit), CloseWhenReadIdle())
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.http2Context))
                    }
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: tls == nil ? .none : .configured(requireALPN: false))
                }
            }
    }
}

/// Closes the connection when `IdleStateHandler` reports that nothing was read for its limit.
final class CloseWhenReadIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
