import Testing

@testable import TokendWire

@Suite struct PostgresURLTests {
    @Test func partsAndLibpqDefaults() throws {
        let full = try PostgresURL("postgres://tokend:s3cret@db.example:6432/tokens?sslmode=verify-full&sslrootcert=/ca.pem&pooler=transaction")
        #expect(full.host == "db.example" && full.port == 6432 && full.user == "tokend" && full.password == "s3cret")
        #expect(full.database == "tokens" && full.sslMode == .verifyFull && full.sslRootCertificate == "/ca.pem" && full.transactionPooler)
        let bare = try PostgresURL("postgresql://h")
        #expect(bare.port == 5432 && bare.user == "postgres" && bare.password == nil && bare.database == "postgres")
        #expect(bare.sslMode == .prefer && bare.sslRootCertificate == nil && !bare.transactionPooler)
        #expect(try PostgresURL("postgres://alice@h").database == "alice")
    }

    @Test func refusalsNameTheRule() {
        for (url, message) in [
            ("mysql://u@h/db", "must look like"), ("postgres:///db", "no host"), ("postgres://h/db?sslmode=verify", "unsupported sslmode"),
            ("postgres://h/db?sslmode=require&sslrootcert=/ca.pem", "sslrootcert is used only"),
            ("postgres://h/db?pooler=statement", "unsupported pooler"),
        ] {
            #expect(throws: PostgresURLError.self, "\(url)") { try PostgresURL(url) }
            do { _ = try PostgresURL(url) } catch { #expect(error.description.contains(message), "\(url): \(error)") }
        }
    }
}
