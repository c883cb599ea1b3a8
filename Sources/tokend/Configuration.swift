import ArgumentParser
import Foundation
import Logging

/// Settings shared by every `tokend` command: the environment, overridden by flags of the same name.
struct GlobalOptions: ParsableArguments {
    @Option(help: "PostgreSQL URL (env TOKEND_DATABASE_URL). Unset: the embedded store in --data-dir.")
    var databaseURL: String?

    @Option(help: "Embedded store and generated dev secrets (env TOKEND_DATA_DIR, default ./.tokend).")
    var dataDir: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env TOKEND_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Log format: text or json (env TOKEND_LOG_FORMAT).")
    var logFormat: String?

    func value(_ flag: String?, _ env: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = ProcessInfo.processInfo.environment[env], !value.isEmpty { return value }
        return nil
    }

    var resolvedDatabaseURL: String? { value(databaseURL, "TOKEND_DATABASE_URL") }
    var resolvedDataDir: String { value(dataDir, "TOKEND_DATA_DIR") ?? "./.tokend" }

    func validate() throws {
        if let level = value(logLevel, "TOKEND_LOG_LEVEL"), Logger.Level(rawValue: level.lowercased()) == nil {
            throw ValidationError("unknown log level \"\(level)\"")
        }
        if let format = value(logFormat, "TOKEND_LOG_FORMAT"), !["text", "json"].contains(format) {
            throw ValidationError("log format must be text or json")
        }
    }

    /// Sets up swift-log once per process.
    func bootstrapLogging() -> Logger {
        let level = value(logLevel, "TOKEND_LOG_LEVEL").flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        let json = value(logFormat, "TOKEND_LOG_FORMAT") == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "tokend")
        logger.logLevel = level
        return logger
    }
}

/// A `host:port` listener address.
struct ListenAddress: Sendable, CustomStringConvertible {
    var host: String
    var port: Int

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    init(parsing text: String, name: String) throws {
        var hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ValidationError("\(name) must look like host:port") }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ValidationError("\(name) must look like host:port") }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        if hostPart.isEmpty { hostPart = "0.0.0.0" }
        guard let port = Int(portPart), (0...65535).contains(port) else {
            throw ValidationError("\(name) has an invalid port \"\(portPart)\"")
        }
        self.host = String(hostPart)
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Parses durations such as `5s`, `250ms`, `2m`, `1h`, or a bare number of seconds.
func parseDuration(_ text: String) -> Double? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        if let value = Double(text.dropLast(suffix.count)), value >= 0 { return value * factor }
    }
    if let value = Double(text), value >= 0 { return value }
    return nil
}
