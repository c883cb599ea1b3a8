import Logging
import ServiceLifecycle
import TokendCore

/// Keeps this replica's signing keys current: loads them at start (the first replica of a new
/// store creates the first key), reloads on every wake-up (PostgreSQL NOTIFY `keys`, sent by a
/// rotation on any replica) and at least every `interval`, in case a notification was lost.
struct SigningKeyService: Service {
    let ring: SigningKeyRing
    let logger: Logger
    let interval: Duration
    private let wakeUps: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(ring: SigningKeyRing, logger: Logger, interval: Duration = .seconds(60)) {
        self.ring = ring
        self.logger = logger
        self.interval = interval
        // Wake-ups that arrive during a reload collapse into one more reload.
        (wakeUps, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a reload soon; never blocks.
    @Sendable func wakeUp() { continuation.yield() }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await reload()
                    for await _ in wakeUps { await reload() }
                }
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil { await reload() }
                }
            }
        }
        continuation.finish()
    }

    private func reload() async {
        do {
            try await ring.reload()
        } catch {
            // The store is down: signed answers use the keys already loaded, or answer 503.
            logger.warning("signing keys not reloaded", metadata: ["error_type": "\(String(reflecting: type(of: error)))"])
        }
    }
}
