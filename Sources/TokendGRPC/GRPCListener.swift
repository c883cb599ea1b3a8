import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import TokendAPI
import TokendCore

/// The gRPC listener (`TOKEND_GRPC_ADDR`): `tokend.v1.IntrospectionService` and `TokenService`,
/// Envoy's `envoy.service.auth.v3.Authorization`, `grpc.health.v1.Health` and server reflection
/// (`v1` and `v1alpha`), over HTTP/2 (h2c, or TLS with ALPN `h2`).
public struct GRPCListener: Service {
    /// The largest request message accepted; a larger one fails with `RESOURCE_EXHAUSTED`
    /// (the HTTP listeners' 64 KiB body limit).
    public static let maxRequestMessageBytes = 64 * 1024

    /// The services this listener serves, as reflection lists them.
    public static let serviceNames = [
        "tokend.v1.IntrospectionService",
        "tokend.v1.TokenService",
        "tokend.v1.RevocationService",
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]

    private let server: GRPCServer<MessageLimitTransport>
    private let logger: Logger
    private let scheme: String
    private let bound: @Sendable (_ host: String, _ port: Int) -> Void

    /// `bound` is called with the bound address once the listener accepts connections.
    public init(
        tokend: Tokend,
        host: String,
        port: Int,
        tls: TLSCertificateSource?,
        keepalive: Duration = .seconds(30),
        logger: Logger,
        bound: @escaping @Sendable (_ host: String, _ port: Int) -> Void = { _, _ in }
    ) throws {
        var config = HTTP2ServerTransport.Custom<TokendListenerFactory>.Config.defaults
        // A hard cap (the stream is reset above it); MessageLimitTransport answers RESOURCE_EXHAUSTED
        // for anything between the limit and the cap.
        config.rpc.maxRequestPayloadSize = 4 * 1024 * 1024
        // A peer that sends nothing for `keepalive` is pinged, and closed when it does not answer
        // within the same time (20 s at most; TokendListenerFactory closes it): a Watch subscriber
        // that holds its socket without reading loses its connection, not only its stream. Clients
        // may ping every 10 s while they have calls (TokendClient's RevocationStream does).
        let keepaliveTimeout = min(keepalive, .seconds(20))
        config.connection.keepalive = .init(time: keepalive, timeout: keepaliveTimeout, clientBehavior: .defaults)
        let transport = MessageLimitTransport(
            base: HTTP2ServerTransport.Custom(
                listenerFactory: TokendListenerFactory(
                    host: host,
                    port: port,
                    tls: tls,
                    eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                    readIdleLimit: TimeAmount(keepalive + keepaliveTimeout)
                ),
                config: config
            ),
            limit: Self.maxRequestMessageBytes
        )
        let index = try ReflectionIndex(served: Self.serviceNames)
        let services: [any RegistrableRPCService] = [
            IntrospectionServiceGRPC(tokend: tokend),
            TokenServiceGRPC(tokend: tokend),
            RevocationServiceGRPC(tokend: tokend),
            ExtAuthzServiceGRPC(tokend: tokend),
            HealthServiceGRPC(replica: tokend.replica, services: Set(Self.serviceNames)),
            ReflectionServiceGRPC(index: index),
            ReflectionAlphaServiceGRPC(index: index),
        ]
        self.server = GRPCServer(transport: transport, services: services)
        self.logger = logger
        self.scheme = tls == nil ? "http" : "https"
        self.bound = bound
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    // Resolves once the listener is bound (nil if it never was).
                    let address = await server.transport.listeningAddress
                    let hostAndPort = address?.ipv4.map { ($0.host, $0.port) } ?? address?.ipv6.map { ($0.host, $0.port) }
                    guard let (host, port) = hostAndPort else { return }
                    logger.notice("gRPC listener ready", metadata: ["address": "\(scheme)://\(host):\(port)"])
                    bound(host, port)
                }
                try await server.serve()
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
