import Foundation
import Testing
import TokendTestSupport

/// TLS on both listeners (`TOKEND_TLS_CERT_FILE` / `TOKEND_TLS_KEY_FILE`): served with the
/// configured certificate, reloaded on SIGHUP and on file change, a broken replacement rejected
/// while the old certificate keeps serving, and bad settings refused at start-up. The client is
/// curl with `--cacert`, so each check also proves which CA's certificate is being served.
@Suite(.serialized) struct TLSTests {
    /// The HTTP status of `GET url` through curl trusting only `ca`, or nil when the TLS
    /// handshake or verification fails.
    static func status(_ url: String, trusting ca: URL) throws -> Int? {
        let result = try run(
            URL(fileURLWithPath: "/usr/bin/env"),
            [
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert", ca.path, url,
            ]
        )
        guard result.status == 0 else { return nil }
        return Int(result.stdout)
    }

    /// Replaces `destination` the way a Kubernetes Secret update or `cp` + `mv` does: atomically.
    static func replace(_ destination: URL, with source: URL) throws {
        let temporary = destination.appendingPathExtension("new")
        try? FileManager.default.removeItem(at: temporary)
        try FileManager.default.copyItem(at: source, to: temporary)
        guard rename(temporary.path, destination.path) == 0 else { throw TestSetupError("rename failed: errno \(errno)") }
    }

    struct Setup {
        let directory: URL
        let first: TestPKI, second: TestPKI, third: TestPKI
        let certificate: URL, key: URL
        let issued: [String: (certificate: URL, key: URL)]
    }

    static func makeSetup() throws -> Setup {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-tls-\(UUID().uuidString)")
        let first = try TestPKI(directory: directory, name: "one")
        let second = try TestPKI(directory: directory, name: "two")
        let third = try TestPKI(directory: directory, name: "three")
        let issued = ["one": try first.issue("server-one"), "two": try second.issue("server-two"), "three": try third.issue("server-three")]
        // The paths tokend is given; their content is replaced during the tests.
        let certificate = directory.appendingPathComponent("tls.crt")
        let key = directory.appendingPathComponent("tls.key")
        try FileManager.default.copyItem(at: issued["one"]!.certificate, to: certificate)
        try FileManager.default.copyItem(at: issued["one"]!.key, to: key)
        return Setup(directory: directory, first: first, second: second, third: third, certificate: certificate, key: key, issued: issued)
    }

    @Test func servesBothListenersAndReloadsOnSighupAndFileChange() async throws {
        let setup = try Self.makeSetup()
        defer { try? FileManager.default.removeItem(at: setup.directory) }
        let server = try TokendProcess(environment: [
            "TOKEND_TLS_CERT_FILE": setup.certificate.path, "TOKEND_TLS_KEY_FILE": setup.key.path,
            "TOKEND_TLS_RELOAD_INTERVAL": "0",  // SIGHUP only, so that the first reload is the signal's
        ])
        defer { try? FileManager.default.removeItem(at: server.dataDir) }
        #expect(server.publicURL.hasPrefix("https://127.0.0.1:"))
        #expect(server.adminURL.hasPrefix("https://127.0.0.1:"))

        // Both listeners speak TLS with the first certificate, and only TLS.
        #expect(try Self.status(server.publicURL + "/healthz", trusting: setup.first.caCertificate) == 200)
        #expect(try Self.status(server.adminURL + "/readyz", trusting: setup.first.caCertificate) == 200)
        #expect(try Self.status(server.publicURL + "/healthz", trusting: setup.second.caCertificate) == nil)
        let plain = server.publicURL.replacingOccurrences(of: "https://", with: "http://")
        #expect(try Self.status(plain + "/healthz", trusting: setup.first.caCertificate) != 200)
        // The OAuth endpoint over TLS: a wrong client gets its 401, and the issuer is https.
        let unauthorised = try run(
            URL(fileURLWithPath: "/usr/bin/env"),
            [
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", setup.first.caCertificate.path,
                "-u", "nobody:wrong", "-d", "token=x", server.publicURL + "/oauth2/introspect",
            ]
        )
        #expect(unauthorised.stdout == "401")
        let metadata = try run(
            URL(fileURLWithPath: "/usr/bin/env"),
            [
                "curl", "-sS", "--cacert", setup.first.caCertificate.path, server.publicURL + "/.well-known/oauth-authorization-server",
            ]
        )
        #expect(metadata.stdout.contains("\"issuer\":\"https://127.0.0.1:"))

        // New files, then SIGHUP: the next connection gets the second certificate.
        try Self.replace(setup.certificate, with: setup.issued["two"]!.certificate)
        try Self.replace(setup.key, with: setup.issued["two"]!.key)
        #expect(try Self.status(server.publicURL + "/healthz", trusting: setup.second.caCertificate) == nil, "not before the signal")
        kill(server.process.processIdentifier, SIGHUP)
        try await eventually("second certificate served after SIGHUP", within: .seconds(10)) {
            try Self.status(server.publicURL + "/healthz", trusting: setup.second.caCertificate) == 200
        }
        #expect(try Self.status(server.adminURL + "/healthz", trusting: setup.second.caCertificate) == 200)
        #expect(server.log.contains("TLS certificate reloaded"))
        #expect(server.process.isRunning)

        // A key that does not match the certificate: rejected, the second certificate stays.
        try Self.replace(setup.certificate, with: setup.issued["three"]!.certificate)
        kill(server.process.processIdentifier, SIGHUP)
        try await eventually("rejected reload reported", within: .seconds(10)) {
            server.log.contains("TLS certificate not reloaded")
        }
        #expect(try Self.status(server.publicURL + "/healthz", trusting: setup.second.caCertificate) == 200)
        #expect(server.process.isRunning)
    }

    @Test func reloadsWhenTheFilesChangeWithoutASignal() async throws {
        let setup = try Self.makeSetup()
        defer { try? FileManager.default.removeItem(at: setup.directory) }
        let server = try TokendProcess(environment: [
            "TOKEND_TLS_CERT_FILE": setup.certificate.path, "TOKEND_TLS_KEY_FILE": setup.key.path,
            "TOKEND_TLS_RELOAD_INTERVAL": "200ms",
        ])
        defer { try? FileManager.default.removeItem(at: server.dataDir) }
        #expect(try Self.status(server.adminURL + "/healthz", trusting: setup.first.caCertificate) == 200)
        // Key first, then certificate: in between the pair does not match and must not be used.
        try Self.replace(setup.key, with: setup.issued["three"]!.key)
        try Self.replace(setup.certificate, with: setup.issued["three"]!.certificate)
        try await eventually("third certificate served after the files changed", within: .seconds(10)) {
            try Self.status(server.adminURL + "/healthz", trusting: setup.third.caCertificate) == 200
        }
        #expect(try Self.status(server.publicURL + "/healthz", trusting: setup.third.caCertificate) == 200)
        #expect(try Self.status(server.publicURL + "/healthz", trusting: setup.first.caCertificate) == nil)
    }

    @Test func badSettingsAreRefusedAtStartup() throws {
        let setup = try Self.makeSetup()
        defer { try? FileManager.default.removeItem(at: setup.directory) }
        let dataDir = setup.directory.appendingPathComponent("data")
        func serve(_ environment: [String: String]) throws -> CommandResult {
            var env = environment
            env["TOKEND_DATA_DIR"] = dataDir.path
            env["TOKEND_HTTP_ADDR"] = "127.0.0.1:0"
            env["TOKEND_ADMIN_ADDR"] = "127.0.0.1:0"
            env["TOKEND_GRPC_ADDR"] = "127.0.0.1:0"
            return try run(Binaries.tokend, ["serve"], environment: env, deadline: 30)
        }
        let onlyCertificate = try serve(["TOKEND_TLS_CERT_FILE": setup.certificate.path])
        #expect(onlyCertificate.status != 0)
        #expect(onlyCertificate.stderr.contains("TOKEND_TLS_CERT_FILE and TOKEND_TLS_KEY_FILE go together"))

        let mismatched = try serve(["TOKEND_TLS_CERT_FILE": setup.certificate.path, "TOKEND_TLS_KEY_FILE": setup.issued["two"]!.key.path])
        #expect(mismatched.status != 0)
        #expect(mismatched.stderr.contains("does not match the certificate"), "\(mismatched.stderr)")

        let missing = try serve([
            "TOKEND_TLS_CERT_FILE": setup.directory.appendingPathComponent("absent.pem").path, "TOKEND_TLS_KEY_FILE": setup.key.path,
        ])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot be read"), "\(missing.stderr)")

        let notPEM = try serve(["TOKEND_TLS_CERT_FILE": setup.key.path, "TOKEND_TLS_KEY_FILE": setup.key.path])
        #expect(notPEM.status != 0)
        #expect(notPEM.stderr.contains("holds no PEM certificate"), "\(notPEM.stderr)")
        // The private key never appears in what is printed.
        let keyText = try String(contentsOf: setup.key, encoding: .utf8)
        let keyBody = keyText.split(separator: "\n").dropFirst().first.map(String.init) ?? "unreachable"
        #expect(!notPEM.stderr.contains(keyBody) && !mismatched.stderr.contains(keyBody))
    }
}

/// `tokend migrate` through `sslmode=verify-full&sslrootcert=…` against a PostgreSQL with TLS: the
/// whole program path (pool and migrator) verifies the server, and a wrong CA is a clear failure.
@Suite(.serialized) struct DatabaseTLSProcessTests {
    @Test func migrateVerifiesTheServerCertificate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-dbtls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let authority = try TestPKI(directory: directory, name: "db")
        let stranger = try TestPKI(directory: directory, name: "stranger")
        let postgres = try await PrivatePostgres.start(tls: try authority.issue("db-server", hosts: ["localhost", "127.0.0.1"]))
        defer { postgres.destroy() }
        let base = "postgres://postgres@127.0.0.1:\(postgres.port)/postgres?sslmode=verify-full&sslrootcert="

        let trusted = try run(Binaries.tokend, ["migrate"], environment: ["TOKEND_DATABASE_URL": base + authority.caCertificate.path])
        #expect(trusted.status == 0, "\(trusted.stderr)")
        let status = try run(Binaries.tokend, ["migrate", "--status"], environment: ["TOKEND_DATABASE_URL": base + authority.caCertificate.path])
        #expect(status.status == 0 && status.stdout.contains("0001"), "\(status.stdout) \(status.stderr)")

        let refused = try run(Binaries.tokend, ["migrate", "--status"], environment: ["TOKEND_DATABASE_URL": base + stranger.caCertificate.path])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("certificate did not verify"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("Fatal error"))
    }
}
