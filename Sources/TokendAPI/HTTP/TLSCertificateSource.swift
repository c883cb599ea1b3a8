import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

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
        /// The same pair offering ALPN `h2` only, for the gRPC listener.
        var http2Context: NIOSSLContext
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

    /// The context for an HTTP/1.1 connection accepted now.
    public var context: NIOSSLContext { state.withLock { $0.context } }

    /// The context for a gRPC (HTTP/2, ALPN `h2`) connection accepted now.
    public var http2Context: NIOSSLContext { state.withLock { $0.http2Context } }

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
        let certificate: [UInt8]
        let key: [UInt8]
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
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        // HTTP/1.1 only; say so, so that clients offering h2 do not guess.
        configuration.applicationProtocols = ["http/1.1"]
        let context: NIOSSLContext
        let http2Context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
            configuration.applicationProtocols = ["h2"]
            http2Context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError("TOKEND_TLS_KEY_FILE \(keyPath) does not match the certificate in \(certificatePath) (\(error))")
        }
        let serial = leaf.serialNumber.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        let expiry = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
        let summary = "serial \(serial), expires \(ISO8601DateFormatter().string(from: expiry))"
        return Loaded(context: context, http2Context: http2Context, certificateBytes: certificateBytes, keyBytes: keyBytes, summary: summary)
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
