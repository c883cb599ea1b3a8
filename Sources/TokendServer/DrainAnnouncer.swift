import Logging
import ServiceLifecycle
import TokendCore

/// On shutdown: turns `/readyz` to 503 at once, then keeps the listeners serving for `delay` so
/// that load balancers stop sending before the sockets close; in-flight requests then finish as
/// each listener shuts down.
struct DrainAnnouncer: Service {
    let replica: Replica
    let delay: Double
    let logger: Logger

    func run() async throws {
        // Returns once this service is asked to shut down (or the task is cancelled).
        try? await gracefulShutdown()
        replica.beginDraining()
        logger.notice("shutting down: /readyz now answers 503", metadata: ["delay_s": "\(delay)"])
        if delay > 0 { try? await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
    }
}
