import Foundation
import TokendClient
import TokendCore

/// Everything `tokend serve` is configured with, read once from flags and the environment
/// (SPEC "Configuration"). Components get these values, never the environment.
public struct ServeConfiguration: Sendable {
    public var store: StoreConfiguration
    public var httpAddress = ListenAddress(host: "127.0.0.1", port: 8080)
    public var adminAddress = ListenAddress(host: "127.0.0.1", port: 8081)
    /// The gRPC listener; `nil`: disabled (`TOKEND_GRPC_ADDR=off`).
    public var grpcAddress: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9090)
    /// Bearer secret of the admin API; `nil`: generated into the data directory (embedded store only).
    public var adminToken: String?
    /// `iss` of issued tokens and metadata; `nil`: `http(s)://<httpAddress>` once it is bound.
    public var issuer: String?
    public var maxStaleness: TimeInterval = 5
    public var cacheEntries = 1_000_000
    /// The bound on the token cache's estimate of its bytes (`TOKEND_CACHE_MEMORY`); with
    /// `cacheEntries`, whichever is reached first limits the cache.
    public var cacheMemory = TokenCache.defaultMemoryLimit
    /// A hot standby (or a pooler in front of standbys) for token lookups and the revocation log's
    /// tail (`TOKEND_READ_DATABASE_URL`); `nil`: the primary answers everything.
    public var readDatabaseURL: String?
    /// How often the log is polled on the standby (`TOKEND_LOG_POLL_INTERVAL`).
    public var logPollInterval: TimeInterval = 0.02
    /// Another tokend whose revocation stream this replica follows instead of LISTEN/NOTIFY
    /// (`TOKEND_REVOCATION_UPSTREAM`); `nil`: none.
    public var revocationUpstream: UpstreamURL?
    /// Entries a `Watch` subscriber may fall behind before it is cut off with `RESOURCE_EXHAUSTED`
    /// (`TOKEND_WATCH_BUFFER`).
    public var watchBuffer = RevocationBroadcast.defaultBufferLimit
    /// The gRPC listener pings a connection it has read nothing from for this long, and closes it
    /// when the ping is not answered within the same time, 20 s at most (`TOKEND_GRPC_KEEPALIVE`).
    public var grpcKeepalive: TimeInterval = 30
    /// Apply pending migrations at start-up (`TOKEND_MIGRATE=auto`).
    public var migrate = true
    public var gcInterval: TimeInterval = 600
    /// How long a rotated-out signing key stays published (`TOKEND_SIGNING_KEY_OVERLAP`).
    public var signingKeyOverlap: TimeInterval = SigningKeyRing.defaultOverlap
    public var shutdownDelay: TimeInterval = 0
    public var drainPeriod: TimeInterval = 30
    public var storeTimeout: TimeInterval = 2
    public var tls: TLSFiles?
    /// How often the TLS files are checked for changes; 0: on SIGHUP only.
    public var tlsReloadInterval: TimeInterval = 2
    /// Guessing limits per replica (`TOKEND_AUTH_FAILURES_PER_MINUTE`, `TOKEND_UNKNOWN_TOKENS_PER_MINUTE`).
    public var guessLimits = GuessLimiter.Limits()
    /// TokenReview user and group name prefixes (`TOKEND_K8S_USERNAME_PREFIX`, `TOKEND_K8S_GROUPS_PREFIX`).
    public var kubernetesUsernamePrefix = "tokend:"
    public var kubernetesGroupsPrefix = "tokend:"

    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String
    }

    public init(store: StoreConfiguration) {
        self.store = store
    }

    /// Reads every setting once. `value` answers a `TOKEND_*` name with its flag or environment
    /// value (`nil` when unset); a value that does not parse is a `ConfigurationError` naming it.
    public init(_ value: (String) -> String?) throws(ConfigurationError) {
        self.init(store: StoreConfiguration(value))
        func duration(
            _ name: String,
            minimum: TimeInterval = 0,
            positive: Bool = false,
            _ example: String
        ) throws(ConfigurationError) -> TimeInterval? {
            guard let text = value(name) else { return nil }
            guard let seconds = parseDuration(text), seconds >= minimum, !positive || seconds > 0 else {
                throw ConfigurationError("\(name) must be \(example)")
            }
            return seconds
        }
        if let text = value("TOKEND_HTTP_ADDR") { httpAddress = try ListenAddress(parsing: text, name: "TOKEND_HTTP_ADDR") }
        if let text = value("TOKEND_ADMIN_ADDR") { adminAddress = try ListenAddress(parsing: text, name: "TOKEND_ADMIN_ADDR") }
        if let text = value("TOKEND_GRPC_ADDR") {
            grpcAddress = text == "off" ? nil : try ListenAddress(parsing: text, name: "TOKEND_GRPC_ADDR")
        }
        adminToken = value("TOKEND_ADMIN_TOKEN")
        issuer = value("TOKEND_ISSUER")
        maxStaleness = try duration("TOKEND_MAX_STALENESS", "a duration such as 5s") ?? maxStaleness
        if let text = value("TOKEND_CACHE_ENTRIES") {
            guard let entries = Int(text), entries >= 0 else { throw ConfigurationError("TOKEND_CACHE_ENTRIES must be a whole number") }
            cacheEntries = entries
        }
        if let text = value("TOKEND_CACHE_MEMORY") {
            guard let bytes = parseByteSize(text) else {
                throw ConfigurationError("TOKEND_CACHE_MEMORY must be a size such as 256MiB, 1GiB, 512KiB, 64MB or a number of bytes")
            }
            cacheMemory = bytes
        }
        readDatabaseURL = value("TOKEND_READ_DATABASE_URL")
        logPollInterval = try duration("TOKEND_LOG_POLL_INTERVAL", minimum: 0.001, "a duration of at least 1ms, such as 20ms") ?? logPollInterval
        if let readURL = readDatabaseURL {  // parsed with the primary's URL, when the store opens
            guard case .postgres = store else {
                throw ConfigurationError("TOKEND_READ_DATABASE_URL needs TOKEND_DATABASE_URL (the primary, for writes)")
            }
            guard !readURL.isEmpty else { throw ConfigurationError("TOKEND_READ_DATABASE_URL must be a postgres:// URL") }
            guard cacheEntries > 0, cacheMemory > 0 else {
                throw ConfigurationError(
                    "TOKEND_READ_DATABASE_URL needs the token cache (TOKEND_CACHE_ENTRIES and TOKEND_CACHE_MEMORY above 0): a standby's answers are trusted only as far as the revocation feed is confirmed"
                )
            }
        }
        if let text = value("TOKEND_REVOCATION_UPSTREAM") {
            do {
                revocationUpstream = try UpstreamURL(text)
            } catch {
                throw ConfigurationError("TOKEND_REVOCATION_UPSTREAM \(error.description)")
            }
            guard case .postgres = store else {
                throw ConfigurationError("TOKEND_REVOCATION_UPSTREAM needs TOKEND_DATABASE_URL (followers share the hub's database)")
            }
            guard readDatabaseURL == nil else {
                throw ConfigurationError("set TOKEND_REVOCATION_UPSTREAM or TOKEND_READ_DATABASE_URL, not both: each is a way to follow the log")
            }
            guard cacheEntries > 0, cacheMemory > 0 else {
                throw ConfigurationError("TOKEND_REVOCATION_UPSTREAM needs the token cache (TOKEND_CACHE_ENTRIES and TOKEND_CACHE_MEMORY above 0): without memory there is nothing to follow for")
            }
        }
        if let text = value("TOKEND_WATCH_BUFFER") {
            guard let entries = Int(text), (1...10_000_000).contains(entries) else {
                throw ConfigurationError("TOKEND_WATCH_BUFFER must be a whole number of entries from 1 to 10000000")
            }
            watchBuffer = entries
        }
        grpcKeepalive = try duration("TOKEND_GRPC_KEEPALIVE", minimum: 0.1, "a duration of at least 100ms, such as 30s") ?? grpcKeepalive
        if let text = value("TOKEND_MIGRATE") {
            guard ["auto", "off"].contains(text) else { throw ConfigurationError("TOKEND_MIGRATE must be auto or off") }
            migrate = text == "auto"
        }
        gcInterval = try duration("TOKEND_GC_INTERVAL", minimum: 1, "a duration of at least 1s") ?? gcInterval
        signingKeyOverlap = try duration("TOKEND_SIGNING_KEY_OVERLAP", "a duration such as 24h") ?? signingKeyOverlap
        shutdownDelay = try duration("TOKEND_SHUTDOWN_DELAY", "a duration such as 5s") ?? shutdownDelay
        drainPeriod = try duration("TOKEND_DRAIN_PERIOD", "a duration such as 5s") ?? drainPeriod
        storeTimeout = try duration("TOKEND_STORE_TIMEOUT", positive: true, "a positive duration such as 3s") ?? storeTimeout
        switch (value("TOKEND_TLS_CERT_FILE"), value("TOKEND_TLS_KEY_FILE")) {
        case (let certificate?, let key?): tls = TLSFiles(certificate: certificate, key: key)
        case (nil, nil): tls = nil
        default: throw ConfigurationError("TOKEND_TLS_CERT_FILE and TOKEND_TLS_KEY_FILE go together: set both or neither")
        }
        tlsReloadInterval = try duration("TOKEND_TLS_RELOAD_INTERVAL", "a duration such as 2s (0 = on SIGHUP only)") ?? tlsReloadInterval
        kubernetesUsernamePrefix =
            try Self.prefix(value("TOKEND_K8S_USERNAME_PREFIX"), name: "TOKEND_K8S_USERNAME_PREFIX") ?? kubernetesUsernamePrefix
        for (name, keyPath) in [
            ("TOKEND_AUTH_FAILURES_PER_MINUTE", \GuessLimiter.Limits.authFailuresPerMinute),
            ("TOKEND_UNKNOWN_TOKENS_PER_MINUTE", \GuessLimiter.Limits.unknownTokensPerMinute),
        ] {
            guard let text = value(name) else { continue }
            guard let limit = Int(text), limit > 0 else { throw ConfigurationError("\(name) must be a positive whole number") }
            guessLimits[keyPath: keyPath] = limit
        }
        kubernetesGroupsPrefix = try Self.prefix(value("TOKEND_K8S_GROUPS_PREFIX"), name: "TOKEND_K8S_GROUPS_PREFIX") ?? kubernetesGroupsPrefix
        if case .postgres = store, adminToken == nil {
            throw ConfigurationError("TOKEND_ADMIN_TOKEN is required with TOKEND_DATABASE_URL (only the embedded dev store generates one)")
        }
    }

    /// A TokenReview name prefix: `-` means none (as kube-apiserver's `--oidc-username-prefix`
    /// has it, since an empty variable counts as unset); no control characters.
    static func prefix(_ text: String?, name: String) throws(ConfigurationError) -> String? {
        guard let text else { return nil }
        if text == "-" { return "" }
        guard text.utf8.count <= 256, !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw ConfigurationError("\(name) must be at most 256 characters without control characters (- for no prefix)")
        }
        return text
    }

    /// Every `TOKEND_*` name `init(_:)` reads, for the command line to offer each as a flag.
    public static let names = [
        "TOKEND_DATABASE_URL", "TOKEND_DATA_DIR", "TOKEND_HTTP_ADDR", "TOKEND_ADMIN_ADDR", "TOKEND_GRPC_ADDR", "TOKEND_ADMIN_TOKEN",
        "TOKEND_ISSUER", "TOKEND_MAX_STALENESS", "TOKEND_CACHE_ENTRIES", "TOKEND_CACHE_MEMORY", "TOKEND_READ_DATABASE_URL",
        "TOKEND_LOG_POLL_INTERVAL", "TOKEND_REVOCATION_UPSTREAM", "TOKEND_WATCH_BUFFER", "TOKEND_GRPC_KEEPALIVE", "TOKEND_MIGRATE", "TOKEND_GC_INTERVAL",
        "TOKEND_SIGNING_KEY_OVERLAP", "TOKEND_SHUTDOWN_DELAY", "TOKEND_DRAIN_PERIOD", "TOKEND_STORE_TIMEOUT", "TOKEND_TLS_CERT_FILE",
        "TOKEND_TLS_KEY_FILE", "TOKEND_TLS_RELOAD_INTERVAL", "TOKEND_K8S_USERNAME_PREFIX", "TOKEND_K8S_GROUPS_PREFIX",
        "TOKEND_AUTH_FAILURES_PER_MINUTE", "TOKEND_UNKNOWN_TOKENS_PER_MINUTE",
    ]
}
