import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Per-request state: Hummingbird's core context plus what the access log reports.
public struct TokendRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Filled by client authentication, read by the access log after the handler returns.
    public let annotations = RequestAnnotations()
    /// The peer's IP address (what the guessing limits count per); `nil` when unknown (in tests).
    public let remoteAddress: String?
    /// The request's connection (a streaming response waits for its caller to go: `PeerGoneHandler`).
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
        self.channel = source.channel
    }

    /// Bodies are read with their own limits (64 KiB, RFC endpoints and Connect alike).
    public var maxUploadSize: Int { 64 * 1024 }
}

/// What a handler learned about the caller, for the access log line.
public final class RequestAnnotations: Sendable {
    private let state = Mutex<String?>(nil)
    public var clientID: String? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
