import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendCore

/// LISTENs for revocation NOTIFYs on a dedicated connection and turns each into a wake-up of the
/// replica's `RevocationFeed`. A NOTIFY is only a wake-up: the revocation log is the truth, and a
/// notification sent while this connection was down is simply lost, so every (re)connect also
/// wakes the feed to re-read the log. Reconnects with exponential backoff (100 ms to 5 s).
public struct RevocationListener: Service {
    private let configuration: PostgresConnection.Configuration
    private let wake: @Sendable () -> Void
    private let logger: Logger

    public init(configuration: PostgresConnection.Configuration, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.wake = wake
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            var backoff = 0.1
            var connectionID = 0
            while !Task.isCancelled {
                connectionID += 1
                do {
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: connectionID, logger: logger)
                    backoff = 0.1
                    do {
                        try await connection.listen(on: PostgresStore.notificationChannel) { notifications in
                            logger.debug("revocation feed listening")
                            wake()  // catch up on whatever was missed while not listening
                            for try await _ in notifications { wake() }
                        }
                        try? await connection.close()
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning(
                        "revocation feed connection lost; reconnecting",
                        metadata: [
                            "error_type": "\(String(reflecting: type(of: error)))", "retry_in_s": "\(backoff)",
                        ]
                    )
                    wake()
                    try await Task.sleep(for: .seconds(backoff))
                    backoff = min(backoff * 2, 5)
                }
            }
        }
    }
}
