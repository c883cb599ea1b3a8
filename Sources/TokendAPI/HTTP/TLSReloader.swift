import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the listeners' certificate on SIGHUP, and when either file's content changes (checked
/// every `pollInterval`; this covers Kubernetes Secret volumes, which swap a symlink).
public struct TLSReloader: Service {
    let source: TLSCertificateSource
    let signals: UnixSignalsSequence
    let pollInterval: Duration?
    let logger: Logger

    /// `signals`: a sequence trapping SIGHUP, made before the listeners start so that a SIGHUP
    /// never meets the default action (exit). `pollInterval` nil: on SIGHUP only.
    public init(source: TLSCertificateSource, signals: UnixSignalsSequence, pollInterval: Duration? = .seconds(2), logger: Logger) {
        self.source = source
        self.signals = signals
        self.pollInterval = pollInterval
        self.logger = logger
    }

    public func run() async throws {
        let signals = self.signals
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in signals { reload(trigger: "SIGHUP", reportUnchanged: true) }
                }
                if let pollInterval {
                    group.addTask {
                        while !Task.isCancelled {
                            do { try await Task.sleep(for: pollInterval) } catch { return }
                            reload(trigger: "file change", reportUnchanged: false)
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Keeps quiet when polling finds nothing new, and logs a failed reload once per content.
    private func reload(trigger: String, reportUnchanged: Bool) {
        switch source.reload(force: reportUnchanged) {
        case .reloaded:
            logger.notice("TLS certificate reloaded", metadata: ["trigger": "\(trigger)", "certificate": "\(source.summary)"])
        case .unchanged:
            if reportUnchanged {
                logger.notice("TLS certificate unchanged", metadata: ["trigger": "\(trigger)", "certificate": "\(source.summary)"])
            }
        case .rejected(let message):
            logger.error(
                "TLS certificate not reloaded; keeping the current one",
                metadata: [
                    "trigger": "\(trigger)", "error": "\(message)", "certificate": "\(source.summary)",
                ]
            )
        }
    }
}
