import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import UnixSignals

/// Wraps a child channel (HTTP/1) in TLS with the context current at each accept.
struct ReloadingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let source: TLSCertificateSource

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = source.context
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            self.base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ReloadingTLSChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1, over TLS with `source`'s current certificate when it is given.
    /// Each connection gets a `PeerGoneHandler`, which a Connect server stream waits on, and with
    /// `fastPath` (the public listener) an `IntrospectionFastPathHandler`.
    public static func tokend(tls source: TLSCertificateSource?, fastPath: IntrospectionFastPath? = nil) -> HTTPServerBuilder {
        let configuration = HTTP1Channel.Configuration(
            additionalChannelHandlers: [PeerGoneHandler()] + (fastPath.map { [IntrospectionFastPathHandler($0)] } ?? [])
        )
        guard let source else { return .http1(configuration: configuration) }
        return .init { responder in
            ReloadingTLSChannel(base: HTTP1Channel(responder: responder, configuration: configuration), source: source)
        }
    }
}
