import Foundation
import GRPCCore
import SwiftProtobuf
import ServiceLifecycle
import Synchronization
import TokendCore
import TokendProto

/// `grpc.health.v1.Health`: `SERVING` exactly when `/readyz` answers 200 (`Replica.readiness()`),
/// for the server as a whole (service `""`) and for each service this listener serves.
///
/// `Watch` re-reads readiness every `watchInterval` (250 ms: a stale feed or a store that stops
/// answering is reported within 1 s), and at once when the replica begins draining; it sends a
/// message only when the status changes. Readiness pings the store, so one reading is shared by
/// every watcher for up to `watchInterval`.
struct HealthServiceGRPC: Grpc_Health_V1_Health.ServiceProtocol {
    typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    let replica: Replica
    let services: Set<String>
    let watchInterval: Duration
    private let latest: SharedReading

    init(replica: Replica, services: Set<String>, watchInterval: Duration = .milliseconds(250)) {
        self.replica = replica
        self.services = services
        self.watchInterval = watchInterval
        self.latest = SharedReading()
    }

    func check(
        request: ServerRequest<Grpc_Health_V1_HealthCheckRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Health_V1_HealthCheckResponse> {
        guard isKnown(request.message.service) else {
            throw RPCError(code: .notFound, message: "unknown service")
        }
        let current = await status(maxAge: .zero)
        return ServerResponse(message: .with { $0.status = current })
    }

    func watch(
        request: ServerRequest<Grpc_Health_V1_HealthCheckRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Health_V1_HealthCheckResponse> {
        let known = isKnown(request.message.service)
        return StreamingServerResponse { writer in
            guard known else {
                // Per the protocol: SERVICE_UNKNOWN, and the call stays open.
                try await writer.write(.with { $0.status = .serviceUnknown })
                while !Task.isCancelled, !Task.isShuttingDownGracefully { try await Task.sleep(for: watchInterval) }
                return [:]
            }
            var last: Status?
            while !Task.isCancelled {
                let current = await status(maxAge: watchInterval)
                if current != last {
                    try await writer.write(.with { $0.status = current })
                    last = current
                }
                // The listener is closing: the watcher has heard NOT_SERVING (readiness reports the
                // drain first), and ends the stream so that the server can stop.
                if Task.isShuttingDownGracefully, current == .notServing { break }
                try await nextLook()
            }
            return [:]
        }
    }

    /// Waits `watchInterval`, or less if the replica begins draining meanwhile.
    private func nextLook() async throws {
        guard !replica.isDraining else { return try await Task.sleep(for: watchInterval) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await Task.sleep(for: watchInterval) }
            group.addTask { await replica.untilDraining() }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func isKnown(_ service: String) -> Bool { service.isEmpty || services.contains(service) }

    /// The replica's readiness as a serving status, re-read when the shared reading is older than `maxAge`.
    private func status(maxAge: Duration) async -> Status {
        if replica.isDraining { return .notServing }
        let clock = ContinuousClock()
        let now = clock.now
        if maxAge > .zero, let cached = latest.value(newerThan: now - maxAge) { return cached }
        let ready = await replica.readiness().ready
        let status: Status = ready ? .serving : .notServing
        latest.store(status, at: now)
        return status
    }
}

/// The last readiness reading and when it was taken, shared by the watchers of one listener.
private final class SharedReading: Sendable {
    private let state = Mutex<(status: Grpc_Health_V1_HealthCheckResponse.ServingStatus, at: ContinuousClock.Instant)?>(nil)

    func value(newerThan instant: ContinuousClock.Instant) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus? {
        state.withLock { reading in
            guard let reading, reading.at >= instant else { return nil }
            return reading.status
        }
    }

    func store(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus, at instant: ContinuousClock.Instant) {
        state.withLock { $0 = (status, instant) }
    }
}
