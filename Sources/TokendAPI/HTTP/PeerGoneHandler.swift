import Hummingbird
import HummingbirdCore
import NIOCore
import Synchronization

/// Tells a streaming response that its caller has gone. Hummingbird allows half-closure, so a
/// client's FIN does not close the channel, and while a response streams nobody reads the request
/// side: `gone` completes on the peer's FIN (`ChannelEvent.inputClosed`) or when the channel
/// closes, whichever comes first.
///
/// `gone` is set in `handlerAdded`, on the event loop, before any request is read; a handler
/// reaches a request task only through `ChannelPipeline.handler(type:)`, a future completed on
/// the same loop after that: hence `@unchecked Sendable`.
final class PeerGoneHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = Any  // passed on untouched

    private(set) var gone: EventLoopFuture<Void>!
    private var promise: EventLoopPromise<Void>?

    func handlerAdded(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.channel.closeFuture.whenComplete { _ in promise.succeed() }
        self.promise = promise
        gone = promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { promise?.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    /// Returns once the caller of the request on `channel` has gone (on a channel without this
    /// handler: once it closes), or once the calling task is cancelled.
    static func gone(on channel: any Channel) async {
        let handler = try? await channel.pipeline.handler(type: PeerGoneHandler.self).get()
        let future = handler?.gone ?? channel.closeFuture
        let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiter.withLock { $0 = continuation }
                future.whenComplete { _ in waiter.withLock { $0.take() }?.resume() }
                if Task.isCancelled { waiter.withLock { $0.take() }?.resume() }
            }
        } onCancel: {
            waiter.withLock { $0.take() }?.resume()
        }
    }
}
