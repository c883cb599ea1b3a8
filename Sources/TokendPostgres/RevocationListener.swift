import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TokendCore

/// LISTENs for revocation NOTIFYs on a dedicated connection and turns each into a wake-up of the
/// replica's `RevocationFeed`. A NOTIFY is only a wake-up: the revocation log is the truth, and a
/// notification sent while this connection was down is simply lost, so every (re)connect also
/// wakes the feed to re-read the log. Reconnects with exponential backoff (100 ms to 5 s).
///
/// The same channel carries signing key changes (payload `keys`, sent by a rotation): those wake
/// `wakeUps.signingKeys` instead, and every (re)connect wakes both.
public struct RevocationListener: Service {
    /// Whom a notification wakes.
    public struct WakeUps: Sendable {
        public var revocations: @Sendable () -> Void
        public var signingKeys: @Sendable () -> Void

        public init(revocations: @escaping @Sendable () -> Void, signingKeys: @escaping @Sendable () -> Void) {
            self.revocations = revocations
            self.signingKeys = signingKeys
        }
    }

    private let configuration: PostgresConnection.Configuration
    private let wakeUps: WakeUps
    private let logger: Logger

    public init(configuration: PostgresConnection.Configuration, logger: Logger, wakeUps: WakeUps) {
        self.configuration = configuration
        self.logger = logger
        self.wakeUps = wakeUps
    }

    private func wake() {
        wakeUps.revocations()
        wakeUps.signingKeys()
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
                            for try await notification in notifications {
                                if notification.payload == "keys" { wakeUps.signingKeys() } else { wakeUps.revocations() }
                            }
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
