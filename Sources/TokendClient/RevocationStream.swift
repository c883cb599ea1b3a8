import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import TokendProto

/// A tokend's revocation stream, `tokend.v1.RevocationService/Watch`, over gRPC (HTTP/2).
///
/// `follow(after:receive:)` is one subscription: it returns or throws when the stream ends, and
/// the caller decides when to follow again, from its own watermark (the stream is gap-free and in
/// `seq` order, so resuming after the last applied `seq` misses nothing and repeats nothing).
public struct RevocationStream: Sendable {
    public let upstream: UpstreamURL
    static let watch = MethodDescriptor(fullyQualifiedService: "tokend.v1.RevocationService", method: "Watch")

    public init(upstream: UpstreamURL) {
        self.upstream = upstream
    }

    /// Subscribes after `afterSeq` (0: a snapshot of every live entry first) and hands each event
    /// to `receive`, in order, until the stream ends. Throws the stream's `RPCError` (e.g.
    /// `UNAVAILABLE` when the serving replica is stale or draining, `OUT_OF_RANGE` when `afterSeq`
    /// is older than its log, `RESOURCE_EXHAUSTED` when this subscriber fell too far behind) or a
    /// connection error. `connected` is called once the server has answered the call.
    public func follow(
        after afterSeq: Int64,
        connected: @escaping @Sendable () -> Void = {},
        receive: @escaping @Sendable (Tokend_V1_RevocationEvent) async throws -> Void
    ) async throws {
        let authorization = upstream.basicAuthorization
        try await withGRPCClient(transport: try Self.transport(to: upstream)) { client in
            try await Self.follow(on: client, authorization: authorization, after: afterSeq, connected: connected, receive: receive)
        }
    }

    /// The HTTP/2 transport to `upstream`: keepalive pings every 10 s (grpc-swift's floor), a peer
    /// that does not answer one within 5 s is dropped; reconnects back off 100 ms → 2 s.
    public static func transport(to upstream: UpstreamURL) throws -> HTTP2ClientTransport.Posix {
        try HTTP2ClientTransport.Posix(
            target: .dns(host: upstream.host, port: upstream.port),
            transportSecurity: upstream.tls ? .tls { _ in } : .plaintext,
            config: .defaults { config in
                // Pings find a peer that vanished without a reset; correctness never depends on them
                // (a follower confirms its view against the log's head, not against this stream).
                config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: false)
                config.backoff = .init(initial: .milliseconds(100), max: .seconds(2), multiplier: 2, jitter: 0.2)
            }
        )
    }

    /// One subscription on a client the caller runs (so that other calls can share its
    /// connection, as `CachingIntrospector`'s do); otherwise as `follow(after:connected:receive:)`.
    public static func follow<Transport: ClientTransport>(
        on client: GRPCClient<Transport>,
        authorization: String,
        after afterSeq: Int64,
        connected: @escaping @Sendable () -> Void = {},
        receive: @escaping @Sendable (Tokend_V1_RevocationEvent) async throws -> Void
    ) async throws {
        var request = Tokend_V1_WatchRequest()
        request.afterSeq = afterSeq
        var metadata = Metadata()
        metadata.addString(authorization, forKey: "authorization")
        try await client.serverStreaming(
            request: ClientRequest(message: request, metadata: metadata),
            descriptor: Self.watch,
            serializer: ProtobufSerializer<Tokend_V1_WatchRequest>(),
            deserializer: ProtobufDeserializer<Tokend_V1_RevocationEvent>(),
            options: .defaults
        ) { response in
            if case .success = response.accepted { connected() }
            for try await event in response.messages {
                try await receive(event)
            }
        }
    }
}
