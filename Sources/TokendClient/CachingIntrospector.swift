import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import SwiftProtobuf
import Synchronization
import TokendProto

/// Introspects tokens at tokend (`tokend.v1.IntrospectionService/Introspect`, RFC 7662) with a
/// local cache of active answers, kept correct by following tokend's revocation stream
/// (`RevocationService/Watch`) — the reference for caching introspection answers safely
/// (RFC 7662 §4: a cache must not outlive what the server would say).
///
/// The cache answers only while the stream is *confirmed*: the server accepted the subscription,
/// and the stream was known live within `maxStaleness` (at the subscription's start, then by a
/// `grpc.health.v1.Health/Check` answering `SERVING` — tokend's `/readyz`, which holds only while
/// its own view of the log is fresh — every `maxStaleness / 4`, on the same HTTP/2 connection).
/// It never answers at or past a token's `exp`. Otherwise every introspection is a call to tokend,
/// whose errors are thrown (never a guess from the cache). See the README, "TokendClient library",
/// for the end-to-end bound.
///
/// `run()` runs the connection, the follower and the liveness checks; call it once, in the task
/// group or `ServiceGroup` that owns this introspector (it has the shape of a swift-service-lifecycle
/// `Service`), and cancel that task to stop. `introspect(_:)` may be called from any task; calls
/// made before `run()` starts wait for it.
public final class CachingIntrospector: Sendable {
    public struct Configuration: Sendable {
        /// The tokend to ask, and as whom (a client with role `introspect`):
        /// `http(s)://client_id:secret@host:9090`, its gRPC listener.
        public var server: UpstreamURL
        /// How long the cache may answer after the stream was last known live. The end-to-end bound
        /// for a silent server is this plus the server's `TOKEND_MAX_STALENESS` (README).
        public var maxStaleness: Duration = .seconds(5)
        /// Cached answers at most; past it an arbitrary entry makes room.
        public var maxEntries: Int = 10_000
        /// The deadline of each call to tokend.
        public var callTimeout: Duration = .seconds(5)
        /// How long an applied revocation keeps refusing answers it covers from the cache; at least
        /// the server's `TOKEND_MAX_STALENESS` (the longest its view may lag the log it streams).
        public var recentRevocationWindow: Duration = .seconds(10)

        public init(server: UpstreamURL) {
            self.server = server
        }
    }

    /// Counters since `run()` began, and the stream's standing now.
    public struct Figures: Sendable, Equatable {
        /// Introspections answered from the cache.
        public var hits: Int
        /// Introspections that went to tokend (not cached, or the cache was not confirmed).
        public var misses: Int
        /// Cached answers evicted by revocation events.
        public var evictions: Int
        /// Cached answers now.
        public var entries: Int
        /// Whether the stream is accepted now (not whether it is confirmed).
        public var connected: Bool
        /// Whether the cache may answer now.
        public var confirmed: Bool
        /// Subscriptions accepted (the first included).
        public var connects: Int
        /// Restarts from a snapshot after `OUT_OF_RANGE`.
        public var snapshots: Int
        /// The last applied revocation `seq`.
        public var lastSeq: Int64
    }

    static let introspectMethod = MethodDescriptor(fullyQualifiedService: "tokend.v1.IntrospectionService", method: "Introspect")
    static let healthCheck = MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check")

    public let configuration: Configuration
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let state: Mutex<AnswerCache>
    private let unixTime: @Sendable () -> Double

    /// - Parameter unixTime: the wall clock that `exp` is compared with (tests move it).
    public init(_ configuration: Configuration, unixTime: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) throws {
        self.configuration = configuration
        self.client = GRPCClient(transport: try RevocationStream.transport(to: configuration.server))
        self.state = Mutex(
            AnswerCache(
                capacity: configuration.maxEntries,
                maxStaleness: configuration.maxStaleness,
                recentWindow: configuration.recentRevocationWindow
            )
        )
        self.unixTime = unixTime
    }

    /// RFC 7662 §2.1 for `token`: from the cache when it may answer, else from tokend (whose
    /// errors, `RPCError`, are thrown). Only the token's SHA-256 is kept.
    public func introspect(_ token: String) async throws -> IntrospectionAnswer {
        let digest = TokenDigest(token: token)
        let (cached, ticket) = state.withLock { cache in
            let answer = cache.answer(for: digest, at: .now, unixNow: unixTime())
            if answer == nil { cache.figures.misses += 1 } else { cache.figures.hits += 1 }
            return (answer, cache.ticket)
        }
        if let cached { return cached }
        var metadata = Metadata()
        metadata.addString(configuration.server.basicAuthorization, forKey: "authorization")
        let response = try await client.unary(
            request: ClientRequest(message: Tokend_V1_IntrospectRequest.with { $0.token = token }, metadata: metadata),
            descriptor: Self.introspectMethod,
            serializer: ProtobufSerializer<Tokend_V1_IntrospectRequest>(),
            deserializer: ProtobufDeserializer<Tokend_V1_IntrospectResponse>(),
            options: callOptions
        ) { try $0.message }
        let answer = IntrospectionAnswer(response, fromCache: false)
        state.withLock { $0.store(answer, for: digest, sentWith: ticket, at: .now, unixNow: unixTime()) }
        return answer
    }

    /// The answer the cache would give for `token` now, without calling tokend (and without
    /// counting a hit or a miss); `nil` when it would ask tokend.
    public func cachedAnswer(_ token: String) -> IntrospectionAnswer? {
        let digest = TokenDigest(token: token)
        return state.withLock { $0.answer(for: digest, at: .now, unixNow: unixTime()) }
    }

    public var figures: Figures {
        state.withLock { cache in
            Figures(
                hits: cache.figures.hits, misses: cache.figures.misses, evictions: cache.figures.evictions,
                entries: cache.entries.count, connected: cache.connected, confirmed: cache.confirmed(at: .now),
                connects: cache.figures.reconnects, snapshots: cache.figures.snapshots, lastSeq: cache.lastSeq
            )
        }
    }

    /// Runs the connection to tokend, the revocation follower and the liveness checks until the
    /// calling task is cancelled. Call it once.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                do { try await self.client.runConnections() } catch where Task.isCancelled {}
            }
            // The follower and the checks end when the task is cancelled; then the connection goes too.
            await withDiscardingTaskGroup { loops in
                loops.addTask { await self.follow() }
                loops.addTask { await self.checkLiveness() }
            }
            self.client.beginGracefulShutdown()
        }
    }

    private var callOptions: CallOptions {
        var options = CallOptions.defaults
        options.timeout = configuration.callTimeout
        // A tokend that cannot be reached is an error now, not a call queued until it returns.
        options.waitForReady = false
        return options
    }

    /// One subscription after another, from the last applied `seq` (from 0 after `OUT_OF_RANGE`),
    /// backing off 100 ms → 2 s between failed attempts.
    private func follow() async {
        let authorization = configuration.server.basicAuthorization
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            let startedAt = ContinuousClock.now
            let (afterSeq, connects) = state.withLock { ($0.lastSeq, $0.figures.reconnects) }
            do {
                try await RevocationStream.follow(
                    on: client, authorization: authorization, after: afterSeq,
                    connected: { self.state.withLock { $0.streamAccepted(startedAt: startedAt) } },
                    receive: { event in self.state.withLock { $0.apply(event, at: .now) } }
                )
                state.withLock { $0.streamEnded() }
            } catch let error as RPCError where error.code == .outOfRange {
                state.withLock {
                    $0.streamEnded()
                    $0.restartFromSnapshot()
                }
                continue
            } catch {
                state.withLock { $0.streamEnded() }
            }
            if state.withLock({ $0.figures.reconnects }) != connects { delay = .milliseconds(100) }
            // Backoff between attempts (a pause, not a wait for a condition).
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    /// Every `maxStaleness / 4` while the stream is accepted: `Health/Check` on the same connection;
    /// `SERVING` confirms the stream live as of the moment the check was sent.
    private func checkLiveness() async {
        let interval = configuration.maxStaleness / 4
        var options = callOptions
        // Up to the bound itself: a late SERVING still confirms the moment it was sent, and a
        // shorter limit failed every check on a busy machine (the cache then never answered).
        options.timeout = min(configuration.callTimeout, configuration.maxStaleness)
        while !Task.isCancelled {
            // A period, not a wait for a condition.
            try? await Task.sleep(for: interval)
            let (connected, ticket) = state.withLock { ($0.connected, $0.ticket) }
            guard connected else { continue }
            let sentAt = ContinuousClock.now
            let serving = try? await client.unary(
                request: ClientRequest(message: Grpc_Health_V1_HealthCheckRequest()),
                descriptor: Self.healthCheck,
                serializer: ProtobufSerializer<Grpc_Health_V1_HealthCheckRequest>(),
                deserializer: ProtobufDeserializer<Grpc_Health_V1_HealthCheckResponse>(),
                options: options
            ) { try $0.message.status == .serving }
            if serving == true { state.withLock { $0.confirmLive(sentAt: sentAt, sentWith: ticket) } }
        }
    }
}
