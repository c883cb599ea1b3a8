import ArgumentParser
import Foundation
import Logging
import TokendServer

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

    /// The store this command works on.
    var store: StoreConfiguration {
        StoreConfiguration { name in
            switch name {
            case "TOKEND_DATABASE_URL": return value(databaseURL, name)
            case "TOKEND_DATA_DIR": return value(dataDir, name)
            default: return nil
            }
        }
    }

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
