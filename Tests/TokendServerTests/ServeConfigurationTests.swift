import Testing
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
}
