import Foundation
import Logging
import NIOSSL
import PostgresNIO
import TokendCore
import TokendWire

/// `postgres://user:pass@host:port/db[?sslmode=disable|prefer|require|verify-ca|verify-full][&sslrootcert=/path/ca.pem][&pooler=transaction|session]`,
/// parsed (the parts by `TokendWire.PostgresURL`, which the fuzzer builds alone; the TLS
/// configuration and the connection settings here). As with libpq: `require` encrypts without checking the server's certificate,
/// `verify-ca` checks that it chains to a trusted root, `verify-full` also that it names the host.
/// Trusted roots: the PEM file `sslrootcert`, else (or with `sslrootcert=system`) the system's.
///
/// `pooler=transaction` (tokend's own option, not libpq's) says that the URL names a pooler in
/// transaction pooling mode (PgBouncer `pool_mode = transaction`): each transaction, and each
/// statement outside one, may run on another server connection, so nothing may rely on session
/// state. The store then uses unnamed statements only (PgBouncer before 1.21 cannot carry named
/// prepared statements), and LISTEN is impossible (`transactionPooler`). `pooler=session` or no
/// `pooler` option: a direct connection or a session pooler, with named prepared statements.
public struct DatabaseURL: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// `nil` for `sslmode=disable`.
    var tls: TLSConfiguration?
    /// Whether TLS is required (`require`, `verify-ca`, `verify-full`) or only preferred.
    var tlsRequired: Bool
    /// `pooler=transaction`: the URL names a transaction pooler. Then `PostgresStore` must be made
    /// with `transactionPooler: true` (unnamed statements only), and no `RevocationListener` may
    /// use this URL: a LISTEN through a transaction pooler registers on whichever server
    /// connection ran it, and its notifications go to whichever client holds that connection next.
    public var transactionPooler: Bool

    public init(_ string: String) throws {
        let parsed: PostgresURL
        do {
            parsed = try PostgresURL(string)
        } catch {
            throw TokendError.invalidRequest(error.description)
        }
        host = parsed.host
        port = parsed.port
        user = parsed.user
        password = parsed.password
        database = parsed.database
        transactionPooler = parsed.transactionPooler
        var config = TLSConfiguration.makeClientConfiguration()
        switch parsed.sslMode {
        case .disable:
            tls = nil
            tlsRequired = false
        case .allow, .prefer:
            config.certificateVerification = .none
            tls = config
            tlsRequired = false
        case .require:
            config.certificateVerification = .none
            tls = config
            tlsRequired = true
        case .verifyCA, .verifyFull:
            // The server's chain must lead to `sslrootcert` (a PEM file of CA certificates), or
            // with no sslrootcert (or `sslrootcert=system`) to the system's trusted roots.
            config.certificateVerification = parsed.sslMode == .verifyCA ? .noHostnameVerification : .fullVerification
            if let rootCertificate = parsed.sslRootCertificate, rootCertificate != "system" {
                let roots: [NIOSSLCertificate]
                do {
                    roots = try NIOSSLCertificate.fromPEMFile(rootCertificate)
                } catch {
                    throw TokendError.invalidRequest("sslrootcert \(rootCertificate) cannot be read as PEM certificates")
                }
                guard !roots.isEmpty else {
                    throw TokendError.invalidRequest("sslrootcert \(rootCertificate) holds no certificate")
                }
                config.trustRoots = .certificates(roots)
            }
            tls = config
            tlsRequired = true
        }
    }

    /// For the connection pool.
    public var clientConfiguration: PostgresClient.Configuration {
        let mode: PostgresClient.Configuration.TLS
        if let tls { mode = tlsRequired ? .require(tls) : .prefer(tls) } else { mode = .disable }
        var configuration = PostgresClient.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: database,
            tls: mode
        )
        configuration.options.maximumConnections = 20
        configuration.options.connectTimeout = .seconds(5)
        // No keep-alive queries on idle connections. With them (postgres-nio 1.33.2's default, a
        // `SELECT 1` every 30 s), cancelling the client's `run()` sometimes never returns: a test
        // client idle for 30 s hung its test run, and `PostgresClient` cancelled in a loop with
        // keep-alives every 5-40 ms hung after 210 rounds, while 300 rounds without them did not.
        // A shutdown that hangs is worse than what keep-alives buy here: an idle connection is
        // closed after the pool's idle timeout (60 s) anyway, and a dead one is found when used,
        // within TOKEND_STORE_TIMEOUT.
        configuration.options.keepAliveBehavior = nil
        return configuration
    }

    /// For a dedicated connection (the LISTEN of the revocation feed).
    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let mode: PostgresConnection.Configuration.TLS
        if let tls {
            let context = try NIOSSLContext(configuration: tls)
            mode = tlsRequired ? .require(context) : .prefer(context)
        } else {
            mode = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: database,
            tls: mode
        )
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// Opens one connection and closes it, so that a one-shot command fails at once with the reason
    /// (refused, TLS verification, authentication) instead of retrying through the pool.
    public func checkConnection(logger: Logger) async throws {
        do {
            let connection = try await PostgresConnection.connect(configuration: try connectionConfiguration(), id: 0, logger: logger)
            try? await connection.close()
        } catch let error as TokendError {
            throw error
        } catch {
            throw TokendError(.unavailable, "cannot connect to PostgreSQL at \(host):\(port): \(Self.explain(error))")
        }
    }

    /// The reason inside a connection error: the server's message (e.g. authentication failed), else
    /// the underlying network or TLS error. Never the query text or the password.
    static func explain(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return explain(underlying) }
            return "\(error.code)"
        }
        if let error = error as? NIOSSLError, case .handshakeFailed(let reason) = error {
            let text = "\(reason)"
            if text.contains("CERTIFICATE_VERIFY_FAILED") { return "TLS handshake failed: the server's certificate did not verify (\(text))" }
            return "TLS handshake failed (\(text))"
        }
        return "\(error)"
    }

    /// The pool configuration for `string` (shorthand).
    public static func configuration(_ string: String) throws -> PostgresClient.Configuration {
        try DatabaseURL(string).clientConfiguration
    }

    /// The URL with its password replaced, for log lines.
    public static func redacted(_ string: String) -> String { PostgresURL.redacted(string) }
}
