import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import UnixSignals
import Synchronization

/// The listeners' certificate and key (`TOKEND_TLS_CERT_FILE`, `TOKEND_TLS_KEY_FILE`), reloadable.
///
/// Every new connection takes the context current at its accept, so a reload applies to the next
/// connection and never disturbs those already open. A reload that fails (a file half written, a key
/// that does not match) keeps the previous certificate and reports why.
public final class TLSCertificateSource: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let state: Mutex<Loaded>

    struct Loaded {
        var context: NIOSSLContext
        var certificateBytes: [UInt8]
        var keyBytes: [UInt8]
        var summary: String
        /// Content of the files at the last failed reload, so that polling reports it once.
        var rejected: [UInt8]?
    }

    /// Loads both files; throws a message that names the file at fault.
    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        let (certificate, key) = try Self.read(certificatePath, keyPath)
        self.state = Mutex(try Self.load(certificate, key, certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The context for a connection accepted now.
    public var context: NIOSSLContext { state.withLock { $0.context } }

    /// Subject-free description of the certificate in use (serial and expiry), for logs.
    public var summary: String { state.withLock { $0.summary } }

    public enum ReloadResult: Equatable, Sendable {
        /// The files hold what is in use (or what was already rejected and reported).
        case unchanged
        /// The new pair is in use from the next connection on.
        case reloaded
        /// The files changed but cannot be used; the current pair stays.
        case rejected(String)
    }

    /// Re-reads both files and swaps in the new pair when it changed and is usable. A pair that was
    /// rejected is `.rejected` only the first time it is seen (`force` reports it again).
    @discardableResult
    public func reload(force: Bool = false) -> ReloadResult {
        let certificate: [UInt8], key: [UInt8]
        do {
            (certificate, key) = try Self.read(certificatePath, keyPath)
        } catch {
            return rejectOnce([], "\(error)", force: force)
        }
        let (unchanged, seenRejected) = state.withLock {
            ($0.certificateBytes == certificate && $0.keyBytes == key, $0.rejected == certificate + key)
        }
        if unchanged { return .unchanged }
        if seenRejected && !force { return .unchanged }
        do {
            let loaded = try Self.load(certificate, key, certificatePath: certificatePath, keyPath: keyPath)
            state.withLock { $0 = loaded }
            return .reloaded
        } catch {
            return rejectOnce(certificate + key, "\(error)", force: force)
        }
    }

    private func rejectOnce(_ content: [UInt8], _ message: String, force: Bool) -> ReloadResult {
        let first = state.withLock { state in
            defer { state.rejected = content }
            return state.rejected != content
        }
        return first || force ? .rejected(message) : .unchanged
    }

    private static func read(_ certificatePath: String, _ keyPath: String) throws -> ([UInt8], [UInt8]) {
        func bytes(_ path: String, _ name: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TLSSetupError("\(name) \(path) cannot be read")
            }
            return Array(data)
        }
        return (try bytes(certificatePath, "TOKEND_TLS_CERT_FILE"), try bytes(keyPath, "TOKEND_TLS_KEY_FILE"))
    }

    private static func load(_ certificateBytes: [UInt8], _ keyBytes: [UInt8], certificatePath: String, keyPath: String) throws -> Loaded {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
        } catch {
            throw TLSSetupError("TOKEND_TLS_CERT_FILE \(certificatePath) holds no PEM certificate")
        }
        guard let leaf = chain.first else {
            throw TLSSetupError("TOKEND_TLS_CERT_FILE \(certificatePath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw TLSSetupError("TOKEND_TLS_KEY_FILE \(keyPath) holds no PEM private key (an encrypted key is not supported)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // HTTP/1.1 only; say so, so that clients offering h2 do not guess.
        configuration.applicationProtocols = ["http/1.1"]
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError("TOKEND_TLS_KEY_FILE \(keyPath) does not match the certificate in \(certificatePath) (\(error))")
        }
        let serial = leaf.serialNumber.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        let expiry = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
        let summary = "serial \(serial), expires \(ISO8601DateFormatter().string(from: expiry))"
        return Loaded(context: context, certificateBytes: certificateBytes, keyBytes: keyBytes, summary: summary)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// A TLS set-up problem, phrased for the operator.
public struct TLSSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Wraps a child channel (HTTP/1) in TLS with the context current at each accept.
struct ReloadingTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let source: TLSCertificateSource

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = source.context
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            self.base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ReloadingTLSChannel: HTTPChannelHandler where Base: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { base.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1, over TLS with `source`'s current certificate when it is given.
    public static func tokend(tls source: TLSCertificateSource?) -> HTTPServerBuilder {
        guard let source else { return .http1() }
        return .init { responder in
            ReloadingTLSChannel(base: HTTP1Channel(responder: responder), source: source)
        }
    }
}

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
            logger.error("TLS certificate not reloaded; keeping the current one", metadata: [
                "trigger": "\(trigger)", "error": "\(message)", "certificate": "\(source.summary)",
            ])
        }
    }
}
