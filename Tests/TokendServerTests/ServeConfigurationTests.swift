import Testing
import TokendClient
import TokendCore
import TokendServer

/// `ServeConfiguration` reads `TOKEND_CACHE_MEMORY` (SPEC "Configuration") once, with its default,
/// and refuses a value it cannot read with an error naming the variable.
@Suite struct ServeConfigurationTests {
    @Test func cacheMemoryDefaultsTo256MiB() throws {
        #expect(try ServeConfiguration { _ in nil }.cacheMemory == 256 << 20)
        #expect(ServeConfiguration.names.contains("TOKEND_CACHE_MEMORY"))
    }

    @Test(arguments: [
        ("256MiB", 256 << 20), ("1GiB", 1 << 30), ("512KiB", 512 << 10), ("64MB", 64_000_000), ("2GB", 2_000_000_000),
        ("512KB", 512_000), ("4096B", 4096), ("1048576", 1_048_576), ("0", 0),
    ])
    func cacheMemoryReadsSizes(text: String, bytes: Int) throws {
        #expect(try ServeConfiguration { $0 == "TOKEND_CACHE_MEMORY" ? text : nil }.cacheMemory == bytes)
    }

    @Test(arguments: ["", "MiB", "256 MiB", "256mib", "256Mi", "1.5GiB", "-1", "+5", "1TiB", "256MiBs", "99999999999GiB", "lots"])
    func cacheMemoryRefusesWhatItCannotRead(text: String) {
        let error = #expect(throws: ConfigurationError.self) { try ServeConfiguration { $0 == "TOKEND_CACHE_MEMORY" ? text : nil } }
        #expect(error?.description.contains("TOKEND_CACHE_MEMORY") == true)
    }

    // MARK: Standby and upstream (issue 13)

    static let primary = "postgres://tokend@db:5432/tokend"

    func configuration(_ settings: [String: String]) throws(ConfigurationError) -> ServeConfiguration {
        var all = ["TOKEND_DATABASE_URL": Self.primary, "TOKEND_ADMIN_TOKEN": "t"]
        all.merge(settings) { $1 }
        return try ServeConfiguration { all[$0] }
    }

    @Test func standbyAndUpstreamAreReadWithTheirDefaults() throws {
        let none = try configuration([:])
        #expect(none.readDatabaseURL == nil && none.revocationUpstream == nil && none.logPollInterval == 0.02)
        let standby = try configuration(["TOKEND_READ_DATABASE_URL": "postgres://tokend@standby/tokend", "TOKEND_LOG_POLL_INTERVAL": "50ms"])
        #expect(standby.readDatabaseURL == "postgres://tokend@standby/tokend" && standby.logPollInterval == 0.05)
        let upstream = try configuration(["TOKEND_REVOCATION_UPSTREAM": "http://edge%3Ahub:p%40ss@hub.internal:9090"])
        #expect(upstream.revocationUpstream?.clientID == "edge:hub")
        #expect(upstream.revocationUpstream?.port == 9090 && upstream.revocationUpstream?.tls == false)
        #expect(upstream.revocationUpstream?.description == "http://edge:hub@hub.internal:9090", "never the secret")
        for name in ["TOKEND_READ_DATABASE_URL", "TOKEND_LOG_POLL_INTERVAL", "TOKEND_REVOCATION_UPSTREAM"] {
            #expect(ServeConfiguration.names.contains(name))
        }
    }

    @Test func watchBufferAndGRPCKeepaliveAreReadWithTheirDefaults() throws {
        let none = try configuration([:])
        #expect(none.watchBuffer == 16_384 && none.grpcKeepalive == 30)
        let set = try configuration(["TOKEND_WATCH_BUFFER": "1000", "TOKEND_GRPC_KEEPALIVE": "2m"])
        #expect(set.watchBuffer == 1000 && set.grpcKeepalive == 120)
        for (name, value) in [("TOKEND_WATCH_BUFFER", "0"), ("TOKEND_WATCH_BUFFER", "many"), ("TOKEND_GRPC_KEEPALIVE", "10ms")] {
            let error = #expect(throws: ConfigurationError.self) { try configuration([name: value]) }
            #expect(error?.description.contains(name) == true, "\(error?.description ?? "")")
        }
        #expect(ServeConfiguration.names.contains("TOKEND_WATCH_BUFFER") && ServeConfiguration.names.contains("TOKEND_GRPC_KEEPALIVE"))
    }

    @Test(arguments: [
        (["TOKEND_REVOCATION_UPSTREAM": "hub:9090"], "TOKEND_REVOCATION_UPSTREAM"),
        (["TOKEND_REVOCATION_UPSTREAM": "http://hub:9090"], "credentials"),
        (["TOKEND_REVOCATION_UPSTREAM": "grpc://a:secret-value@hub:9090"], "TOKEND_REVOCATION_UPSTREAM"),
        (["TOKEND_REVOCATION_UPSTREAM": "http://a:b@hub:9090", "TOKEND_READ_DATABASE_URL": "postgres://s/t"], "not both"),
        (["TOKEND_REVOCATION_UPSTREAM": "http://a:b@hub:9090", "TOKEND_CACHE_ENTRIES": "0"], "token cache"),
        (["TOKEND_READ_DATABASE_URL": "postgres://s/t", "TOKEND_CACHE_MEMORY": "0"], "token cache"),
        (["TOKEND_LOG_POLL_INTERVAL": "0s"], "TOKEND_LOG_POLL_INTERVAL"),
    ])
    func standbyAndUpstreamRefuseWhatCannotWork(settings: [String: String], mentions: String) {
        let error = #expect(throws: ConfigurationError.self) { try configuration(settings) }
        #expect(error?.description.contains(mentions) == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("secret-value") == false)
    }

    @Test func standbyAndUpstreamNeedThePrimary() {
        for (name, value) in [("TOKEND_READ_DATABASE_URL", "postgres://s/t"), ("TOKEND_REVOCATION_UPSTREAM", "http://a:b@hub:9090")] {
            let error = #expect(throws: ConfigurationError.self) { try ServeConfiguration { $0 == name ? value : nil } }
            #expect(error?.description.contains("TOKEND_DATABASE_URL") == true, "\(error?.description ?? "")")
        }
    }
}
