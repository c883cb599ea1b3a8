import Foundation

/// `TOKEND_DATABASE_URL` and `TOKEND_READ_DATABASE_URL` parsed into their parts:
/// `postgres://user:pass@host:port/db[?sslmode=…][&sslrootcert=…][&pooler=…]` (the options are
/// described by `TokendPostgres.DatabaseURL`, which makes the TLS configuration and the connection
/// settings of these parts). Pure Foundation, so that the fuzzer can build it.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    /// libpq's `sslmode` values.
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// `sslrootcert`: a PEM file, or `system`; only with `verify-ca` and `verify-full`.
    public var sslRootCertificate: String?
    /// `pooler=transaction`.
    public var transactionPooler: Bool

    /// Parses `string`. Defaults as libpq's: port 5432, user `postgres`, the database named as the
    /// user, `sslmode=prefer`. The error's description is fit for an operator and never quotes the
    /// password.
    public init(_ string: String) throws(PostgresURLError) {
        guard let url = URLComponents(string: string), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw PostgresURLError("TOKEND_DATABASE_URL must look like postgres://user:pass@host:port/db")
        }
        // The host as written: a DNS name or IPv4 address in ASCII (an internationalized name in its
        // `xn--` form), or an IPv6 literal in brackets. Foundation's `host` converts between Unicode
        // and punycode, not always reversibly (the fuzzer found `uƍ%432` rendered as `xn--uC2-flb`,
        // which parses to `uc2ȓ`), and a resolver wants the ASCII form anyway.
        guard let host = url.encodedHost, !host.isEmpty else {
            throw PostgresURLError("TOKEND_DATABASE_URL has no host")
        }
        guard host.hasPrefix("[") || host.utf8.allSatisfy(Self.isHostByte) else {
            throw PostgresURLError(
                "TOKEND_DATABASE_URL: the host must be a DNS name or an IP address in ASCII (an internationalized name in its xn-- form)")
        }
        self.host = host
        // Foundation takes any number of digits, and its `port` is nil past Int.max: the default
        // only for no port at all (`host` or `host:`).
        let portText = url.rangeOfPort.flatMap { range in url.string.map { String($0[range]) } } ?? ""
        if !portText.isEmpty {
            guard let port = url.port, (1...65535).contains(port) else {
                throw PostgresURLError("TOKEND_DATABASE_URL has a port outside 1-65535")
            }
        }
        self.port = url.port ?? 5432
        // Each part percent-decoded once, from the text as written; one that does not decode to
        // UTF-8 is refused, never replaced by the default or dropped.
        func decoded(_ part: String?, _ name: String) throws(PostgresURLError) -> String? {
            guard let part else { return nil }
            guard let text = part.removingPercentEncoding else {
                throw PostgresURLError("TOKEND_DATABASE_URL: the \(name) is not UTF-8 once percent-decoded")
            }
            return text
        }
        self.user = try decoded(url.percentEncodedUser, "user") ?? "postgres"
        self.password = try decoded(url.percentEncodedPassword, "password")
        var path = url.percentEncodedPath
        if path.hasPrefix("/") { path.removeFirst() }
        let database = try decoded(path, "database name") ?? ""
        self.database = database.isEmpty ? self.user : database
        let query = url.queryItems ?? []
        let modeName = query.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        guard let mode = SSLMode(rawValue: modeName) else {
            throw PostgresURLError("unsupported sslmode \"\(modeName)\" (disable, prefer, require, verify-ca, verify-full)")
        }
        sslMode = mode
        sslRootCertificate = query.first(where: { $0.name == "sslrootcert" })?.value
        if sslRootCertificate != nil, mode != .verifyCA, mode != .verifyFull {
            throw PostgresURLError("sslrootcert is used only with sslmode=verify-ca or verify-full")
        }
        switch query.first(where: { $0.name == "pooler" }).map({ $0.value ?? "" }) {
        case nil, "session":
            transactionPooler = false
        case "transaction":
            transactionPooler = true
        case let other?:
            throw PostgresURLError("unsupported pooler \"\(other)\" (transaction, session)")
        }
    }

    /// The parts as a URL again, every one explicit (user, port, database, `sslmode`), each
    /// percent-encoded: it parses to the same parts.
    public var url: String { render(password: password) }

    /// The URL with the password replaced by `xxxxx`, for log lines and messages.
    public var description: String { render(password: password == nil ? nil : "xxxxx") }

    private func render(password: String?) -> String {
        let encode = PercentEncoding.encode
        var text = "postgres://" + encode(user)
        if let password { text += ":" + encode(password) }
        text += "@" + host + ":\(port)/" + encode(database)
        text += "?sslmode=" + sslMode.rawValue
        if let sslRootCertificate { text += "&sslrootcert=" + encode(sslRootCertificate) }
        if transactionPooler { text += "&pooler=transaction" }
        return text
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    /// `string` with its password replaced, for log lines; also for a URL that does not parse.
    public static func redacted(_ string: String) -> String {
        guard var url = URLComponents(string: string) else { return "(unparseable URL)" }
        // As written: `password` is nil for one that does not decode to UTF-8.
        if url.percentEncodedPassword != nil { url.percentEncodedPassword = "xxxxx" }
        return url.string ?? "(unparseable URL)"
    }
}

/// Why a database URL was refused: a message for the operator, never quoting the password.
public struct PostgresURLError: Error, Equatable, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
