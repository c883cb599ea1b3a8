import Foundation
import Logging
import PostgresNIO
import Testing
import TokendCore
import TokendPostgres
import TokendTestSupport

/// `sslmode` and `sslrootcert` in `TOKEND_DATABASE_URL`, against PostgreSQL servers of the test's
/// own with `ssl = on` and certificates from a throwaway CA. Each connection reports, from
/// `pg_stat_ssl`, whether the server sees it encrypted.
@Suite(.serialized) struct DatabaseTLSTests {
    /// Connects as the LISTEN connection does; returns whether the session is encrypted.
    static func connectionIsEncrypted(_ url: String) async throws -> Bool {
        let connection = try await PostgresConnection.connect(
            configuration: try DatabaseURL(url).connectionConfiguration(),
            id: 1,
            logger: TestEnvironment.logger
        )
        do {
            let encrypted = try await encrypted(
                connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: TestEnvironment.logger)
            )
            try await connection.close()
            return encrypted
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Through the pool, as the store does.
    static func poolIsEncrypted(_ url: String) async throws -> Bool {
        let client = PostgresClient(configuration: try DatabaseURL.configuration(url), backgroundLogger: TestEnvironment.logger)
        return try await withThrowingTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            group.addTask {
                try await encrypted(client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw TestSetupError("pool returned no answer")
        }
    }

    static func encrypted(_ rows: PostgresRowSequence) async throws -> Bool {
        for try await row in rows { return try row.decode(Bool.self) }
        throw TestSetupError("pg_stat_ssl has no row for this backend")
    }

    @Test func modesAndRootCertificatesAgainstATLSServer() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-dbtls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let authority = try TestPKI(directory: directory, name: "db")
        let stranger = try TestPKI(directory: directory, name: "stranger")
        let server = try await PrivatePostgres.start(tls: try authority.issue("db-server", hosts: ["localhost", "127.0.0.1"]))
        defer { server.destroy() }
        let ip = "postgres://postgres@127.0.0.1:\(server.port)/postgres"
        let named = "postgres://postgres@localhost:\(server.port)/postgres"
        let ca = authority.caCertificate.path

        #expect(try await Self.connectionIsEncrypted(ip + "?sslmode=disable") == false)
        #expect(try await Self.connectionIsEncrypted(ip + "?sslmode=prefer") == true)
        #expect(try await Self.connectionIsEncrypted(ip + "?sslmode=require") == true)
        #expect(try await Self.connectionIsEncrypted(ip + "?sslmode=verify-ca&sslrootcert=\(ca)") == true)
        #expect(try await Self.connectionIsEncrypted(ip + "?sslmode=verify-full&sslrootcert=\(ca)") == true)
        #expect(try await Self.connectionIsEncrypted(named + "?sslmode=verify-full&sslrootcert=\(ca)") == true)
        #expect(try await Self.poolIsEncrypted(named + "?sslmode=verify-full&sslrootcert=\(ca)") == true)

        // A CA that did not sign the server's certificate, and the system roots, are refused.
        await #expect(throws: (any Error).self) {
            try await Self.connectionIsEncrypted(ip + "?sslmode=verify-full&sslrootcert=\(stranger.caCertificate.path)")
        }
        await #expect(throws: (any Error).self) {
            try await Self.connectionIsEncrypted(ip + "?sslmode=verify-ca&sslrootcert=\(stranger.caCertificate.path)")
        }
        await #expect(throws: (any Error).self) { try await Self.connectionIsEncrypted(ip + "?sslmode=verify-full") }
        await #expect(throws: (any Error).self) { try await Self.connectionIsEncrypted(ip + "?sslmode=verify-full&sslrootcert=system") }
    }

    @Test func verifyFullChecksTheHostName() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-dbtls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let authority = try TestPKI(directory: directory, name: "db")
        // Signed by the trusted CA, but for another host.
        let server = try await PrivatePostgres.start(tls: try authority.issue("elsewhere", hosts: ["db.example.com"]))
        defer { server.destroy() }
        let ca = authority.caCertificate.path
        for host in ["127.0.0.1", "localhost"] {
            let url = "postgres://postgres@\(host):\(server.port)/postgres"
            #expect(try await Self.connectionIsEncrypted(url + "?sslmode=verify-ca&sslrootcert=\(ca)") == true)
            await #expect(throws: (any Error).self, "verify-full to \(host)") {
                try await Self.connectionIsEncrypted(url + "?sslmode=verify-full&sslrootcert=\(ca)")
            }
        }
    }

    @Test func requireFailsAgainstAServerWithoutTLS() async throws {
        let server = try await PrivatePostgres.start()
        defer { server.destroy() }
        #expect(try await Self.connectionIsEncrypted(server.url + "?sslmode=prefer") == false)
        await #expect(throws: (any Error).self) { try await Self.connectionIsEncrypted(server.url + "?sslmode=require") }
    }

    @Test func badRootCertificateSettingsAreClearErrors() throws {
        let missing = "/nonexistent/ca.pem"
        #expect(throws: TokendError.self) { try DatabaseURL("postgres://u@h/db?sslmode=verify-full&sslrootcert=\(missing)") }
        do {
            _ = try DatabaseURL("postgres://u@h/db?sslmode=verify-full&sslrootcert=\(missing)")
        } catch let error as TokendError {
            #expect(error.message.contains("sslrootcert /nonexistent/ca.pem"))
        }
        #expect(throws: TokendError.self) { try DatabaseURL("postgres://u@h/db?sslmode=require&sslrootcert=/etc/hostname") }
        #expect(throws: TokendError.self) { try DatabaseURL("postgres://u@h/db?sslmode=verify-everything") }
        #expect(throws: Never.self) { try DatabaseURL("postgres://u@h/db?sslmode=verify-full&sslrootcert=system") }
    }
}
