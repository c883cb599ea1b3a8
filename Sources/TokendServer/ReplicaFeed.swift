import ServiceLifecycle
import TokendCore

/// Runs the replica's revocation feed until shutdown.
struct ReplicaFeed: Service {
    let replica: Replica

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await replica.run()
        }
    }
}
