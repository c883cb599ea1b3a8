import Foundation
import Logging
import ServiceLifecycle
import TokendCore

/// Deletes expired tokens periodically (`tokend gc` does the same once).
struct ExpiryCollector: Service {
    let store: any TokendStore
    let interval: Double
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: .seconds(interval)) } catch { return }
                do {
                    let deleted = try await store.deleteExpired(before: Date())
                    if deleted > 0 { logger.info("expired tokens deleted", metadata: ["count": "\(deleted)"]) }
                } catch {
                    logger.warning("expiry clean-up failed; will retry", metadata: ["error_type": "\(String(reflecting: type(of: error)))"])
                }
            }
        }
    }
}
