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

    // Found by the database_url fuzz target, and while fixing what it found.

    @Test func partsArePercentDecodedOnce() throws {
        let url = try PostgresURL("postgres://a%2541:p%2541%40@h/d%2541")
        #expect(url.user == "a%41")
        #expect(url.password == "p%41@", "was p A@: decoded twice")
        #expect(url.database == "d%41")
    }

    @Test func aPasswordIsNeverDroppedNorAUserOrDatabaseReplacedByTheDefault() throws {
        // Not valid percent-encoding: Foundation takes the `%` as written (it used to be dropped,
        // and the connection made without a password).
        #expect(try PostgresURL("postgres://u:p%zz@h/db").password == "p%zz")
        // Not UTF-8 once decoded: refused (a password used to be dropped, a user or database name
        // replaced by the default), with a message that does not quote it.
        for (url, part) in [("postgres://u:s%C3cret@h/db", "password"), ("postgres://%C3@h/db", "user"), ("postgres://u@h/d%C3b", "database name")] {
            do {
                let parsed = try PostgresURL(url)
                Issue.record("\(url) parsed as user \(parsed.user), database \(parsed.database)")
            } catch {
                #expect(error.description.contains("the \(part) is not UTF-8"), "\(error)")
                #expect(!error.description.contains("s%C3cret"))
            }
        }
    }

    @Test func thePortIsATCPPort() throws {
        #expect(try PostgresURL("postgres://h:1/db").port == 1)
        #expect(try PostgresURL("postgres://h:65535/db").port == 65535)
        #expect(try PostgresURL("postgres://h:/db").port == 5432)
        // NIO truncated 99999 to 34463 and connected there; past Int.max Foundation's port is nil,
        // and the default was taken.
        for port in ["0", "65536", "99999", "18446744073709551616", "287311111111111111111111111111111111111111111111111111111111111111111111132"] {
            #expect(throws: PostgresURLError.self, "\(port)") { try PostgresURL("postgres://h:\(port)/db") }
        }
    }

    @Test func theHostIsTakenAsWrittenInASCII() throws {
        #expect(try PostgresURL("postgres://u@my-db.svc_1:5/db").host == "my-db.svc_1")
        #expect(try PostgresURL("postgres://u@10.0.0.7/db").host == "10.0.0.7")
        #expect(try PostgresURL("postgres://u@[fe80::1]/db").host == "[fe80::1]")
        // An internationalized name stays in its xn-- form: Foundation's `host` decodes it.
        let idn = try PostgresURL("postgres://u@xn--uc2-flb/db")
        #expect(idn.host == "xn--uc2-flb")
        #expect(try PostgresURL(idn.url) == idn)
        // Found by the fuzzer: `uƍ%432` became `xn--uC2-flb`, which parses to `uc2ȓ`.
        for host in ["u\u{18D}%432", "u%C6%8D", "h%2Fx", "h%41"] {
            #expect(throws: PostgresURLError.self, "\(host)") { try PostgresURL("postgres://u@\(host)/db") }
        }
    }

    @Test func theRedactionForLogsKeepsNoPassword() {
        #expect(PostgresURL.redacted("postgres://u:s3cret@h/db") == "postgres://u:xxxxx@h/db")
        // Not UTF-8 once decoded: Foundation's `password` is nil, and it was logged as written.
        #expect(PostgresURL.redacted("postgres://u:p%80ss@h/db") == "postgres://u:xxxxx@h/db")
        #expect(PostgresURL.redacted("postgres://u@h/db") == "postgres://u@h/db")
        #expect(PostgresURL.redacted("mysql:// bad") == "(unparseable URL)")
    }

    @Test func theRenderedURLParsesToTheSamePartsAndTheDescriptionHidesThePassword() throws {
        let url = try PostgresURL("postgres://us%20er:p%3Aw%2F@[::1]:6432/my%20db?sslmode=verify-ca&sslrootcert=/a%20b.pem")
        #expect(try PostgresURL(url.url) == url)
        #expect(url.description == "postgres://us%20er:xxxxx@[::1]:6432/my%20db?sslmode=verify-ca&sslrootcert=%2Fa%20b.pem")
    }
}
