import Foundation
import NIOSSL
import PostgresNIO
import TokendCore

/// Parses `postgres://user:pass@host:port/db[?sslmode=disable|prefer|require|verify-ca|verify-full]`.
public enum DatabaseURL {
    public static func configuration(_ string: String) throws -> PostgresClient.Configuration {
        guard let url = URLComponents(string: string), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw TokendError.invalidRequest("TOKEND_DATABASE_URL must look like postgres://user:pass@host:port/db")
        }
        guard let host = url.host, !host.isEmpty else {
            throw TokendError.invalidRequest("TOKEND_DATABASE_URL has no host")
        }
        let user = url.user?.removingPercentEncoding ?? "postgres"
        let password = url.password?.removingPercentEncoding
        var database = url.path
        if database.hasPrefix("/") { database.removeFirst() }
        let mode = url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable":
            tls = .disable
        case "allow", "prefer":
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .none
            tls = .prefer(config)
        case "require":
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .none
            tls = .require(config)
        case "verify-ca":
            var config = TLSConfiguration.makeClientConfiguration()
            config.certificateVerification = .noHostnameVerification
            tls = .require(config)
        case "verify-full":
            tls = .require(TLSConfiguration.makeClientConfiguration())
        default:
            throw TokendError.invalidRequest("unsupported sslmode \"\(mode)\" (disable, prefer, require, verify-ca, verify-full)")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: user, password: password,
            database: database.isEmpty ? user : database, tls: tls
        )
        configuration.options.maximumConnections = 20
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// The URL with its password replaced, for log lines.
    public static func redacted(_ string: String) -> String {
        guard var url = URLComponents(string: string) else { return "(unparseable URL)" }
        if url.password != nil { url.password = "xxxxx" }
        return url.string ?? "(unparseable URL)"
    }
}
