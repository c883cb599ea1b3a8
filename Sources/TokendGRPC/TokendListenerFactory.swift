import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import NIOSSL
import TokendAPI

/// Accepts the gRPC listener's connections: h2c, or TLS with ALPN `h2` from the same
/// `TLSCertificateSource` as the HTTP listeners, so that a reloaded certificate serves every
/// connection accepted after the reload (grpc-swift's own Posix transport fixes its TLS context
/// at start).
struct TokendListenerFactory: HTTP2ServerTransport.ListenerFactory {
    let host: String
    let port: Int
    let tls: TLSCertificateSource?
    let eventLoopGroup: any EventLoopGroup

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let tls = self.tls
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in listenerConfigurator.configure(channel: channel) }
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.http2Context))
                    }
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: tls == nil ? .none : .configured(requireALPN: false))
                }
            }
    }
}
