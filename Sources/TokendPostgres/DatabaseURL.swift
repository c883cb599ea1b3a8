import Foundation
import NIOSSL
import PostgresNIO
import TokendCore

/// `postgres://user:pass@host:port/db[?sslmode=disable|prefer|require|verify-ca|verify-full]`, parsed.
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

    public init(_ string: String) throws {
        guard let url = URLComponents(string: string), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw TokendError.invalidRequest("TOKEND_DATABASE_URL must look like postgres://user:pass@host:port/db")
        }
        guard let host = url.host, !host.isEmpty else {
            throw TokendError.invalidRequest("TOKEND_DATABASE_URL has no host")
        }
        self.host = host
        self.port = url.port ?? 5432
        self.user = url.user?.removingPercentEncoding ?? "postgres"
        self.password = url.password?.removingPercentEncoding
        var database = url.path
        if database.hasPrefix("/") { database.removeFirst() }
        self.database = database.isEmpty ? self.user : (database.removingPercentEncoding ?? database)
        let mode = url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        var config = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case "disable":
            tls = nil
            tlsRequired = false
        case "allow", "prefer":
            config.certificateVerification = .none
            tls = config
            tlsRequired = false
        case "require":
            config.certificateVerification = .none
            tls = config
            tlsRequired = true
        case "verify-ca":
            config.certificateVerification = .noHostnameVerification
            tls = config
            tlsRequired = true
        case "verify-full":
            tls = config
            tlsRequired = true
        default:
            throw TokendError.invalidRequest("unsupported sslmode \"\(mode)\" (disable, prefer, require, verify-ca, verify-full)")
        }
    }

    /// For the connection pool.
    public var clientConfiguration: PostgresClient.Configuration {
        let mode: PostgresClient.Configuration.TLS
        if let tls { mode = tlsRequired ? .require(tls) : .prefer(tls) } else { mode = .disable }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: mode)
        configuration.options.maximumConnections = 20
        configuration.options.connectTimeout = .seconds(5)
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
            host: host, port: port, username: user, password: password, database: database, tls: mode)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// The pool configuration for `string` (shorthand).
    public static func configuration(_ string: String) throws -> PostgresClient.Configuration {
        try DatabaseURL(string).clientConfiguration
    }

    /// The URL with its password replaced, for log lines.
    public static func redacted(_ string: String) -> String {
        guard var url = URLComponents(string: string) else { return "(unparseable URL)" }
        if url.password != nil { url.password = "xxxxx" }
        return url.string ?? "(unparseable URL)"
    }
}
