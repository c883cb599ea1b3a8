import Foundation
import Testing
import TokendTestSupport

/// Runs the built `tokenctl` against a live `tokend` on each store and checks output, JSON shape
/// and exit status (SPEC: 0 success, 1 refused or failed, 2 usage error).
@Suite(.serialized) struct TokenctlTests {
    /// A live server on `kind`: the embedded store in a temp dir, or a fresh PostgreSQL database.
    static func withServer(_ kind: StoreKind, _ body: (TokendProcess) async throws -> Void) async throws {
        switch kind {
        case .sqlite:
            let server = try TokendProcess()
            defer {
                server.stop()
                try? FileManager.default.removeItem(at: server.dataDir)
            }
            try await body(server)
        case .postgres:
            let (name, url) = try await createDatabase()
            do {
                let server = try TokendProcess(environment: ["TOKEND_DATABASE_URL": url, "TOKEND_ADMIN_TOKEN": "cli-test-admin-token"])
                defer {
                    server.stop()
                    try? FileManager.default.removeItem(at: server.dataDir)
                }
                try await body(server)
            }
            try await dropDatabase(name)
        case .pgbouncer:
            throw TestSetupError("the tokenctl walkthrough runs on .postgres and .sqlite (StoreKind.allCases)")
        }
    }

    /// `tokend gc` on each store, with the clock of the moment: it deletes the token that has
    /// expired and the log entry that covered only it, keeps the live tokens and the entry that
    /// covers one of them, and a second run finds nothing left to delete.
    @Test(arguments: StoreKind.allCases)
    func gcDeletesWhatHasExpiredByNowAndKeepsTheRest(kind: StoreKind) async throws {
        try await Self.withServer(kind) { server in
            #expect(try server.tokenctl(["clients", "create", "rs", "--role", "introspect"]).status == 0)
            func issue(ttl: String) throws -> String {
                let issued = try server.tokenctl(["tokens", "issue", "--client", "rs", "--subject", "s", "--ttl", ttl, "--output", "json"])
                return try #require(issued.json?["access_token"] as? String, "\(issued.stderr)")
            }
            let expiring = try issue(ttl: "1s")
            let expiredBy = Date().addingTimeInterval(2)  // iat is whole seconds
            let revokedLive = try issue(ttl: "1h")
            let live = try issue(ttl: "1h")
            for token in [expiring, revokedLive] { #expect(try server.tokenctl(["revoke", "--token", token]).status == 0) }
            server.stop()  // the embedded store admits one process at a time

            try await poll(until: "the 1 s token has expired", within: .seconds(30)) { Date() > expiredBy }
            let store = server.environment.filter { $0.key == "TOKEND_DATA_DIR" || $0.key == "TOKEND_DATABASE_URL" }
            let first = try run(Binaries.tokend, ["gc"], environment: store)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout == "deleted 1 expired tokens\n")
            let second = try run(Binaries.tokend, ["gc"], environment: store)
            #expect(second.stdout == "deleted 0 expired tokens\n", "\(second.stderr)")

            let restarted = try TokendProcess(dataDir: server.dataDir, environment: server.environment)
            defer { restarted.stop() }
            let active = try restarted.tokenctl(["tokens", "introspect", live, "--output", "json"])
            #expect(active.json?["active"] as? Bool == true, "\(active.stdout) \(active.stderr)")
            let revoked = try restarted.tokenctl(["tokens", "introspect", revokedLive, "--output", "json"])
            #expect(revoked.json?.count == 1 && revoked.json?["active"] as? Bool == false)
            let log = try restarted.tokenctl(["revocations", "list", "--output", "json"])
            let entries = try #require(log.json?["entries"] as? [[String: Any]], "\(log.stderr)")
            #expect(entries.count == 1, "the entry of the live revoked token only: \(entries)")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func walkthroughWorksEndToEnd(kind: StoreKind) async throws {
        try await Self.withServer(kind) { server in
            let created = try server.tokenctl(["clients", "create", "rs", "--role", "introspect", "--audience", "api", "--output", "json"])
            #expect(created.status == 0, "\(created.stderr)")
            let client = try #require(created.json)
            #expect(client["client_id"] as? String == "rs")
            #expect((client["client_secret"] as? String)?.count == 43)
            #expect(client["roles"] as? [String] == ["introspect"])
            #expect(client["audiences"] as? [String] == ["api"])
            let secret = try #require(client["client_secret"] as? String)

            let issued = try server.tokenctl([
                "tokens", "issue", "--client", "rs", "--subject", "alice", "--scope", "read write",
                "--audience", "api", "--ttl", "1h", "--refresh", "--output", "json",
            ])
            #expect(issued.status == 0, "\(issued.stderr)")
            let tokens = try #require(issued.json)
            let access = try #require(tokens["access_token"] as? String)
            #expect(access.hasPrefix("tkd_at_"))
            #expect((tokens["refresh_token"] as? String)?.hasPrefix("tkd_rt_") == true)
            #expect(tokens["token_type"] as? String == "Bearer")
            #expect(tokens["expires_in"] as? Int == 3600)
            #expect(tokens["grant_id"] is String)
            #expect(tokens["jti"] is String)

            // The resource server introspects over the public listener (RFC 7662).
            let (status, body) = try await postForm(server.publicURL + "/oauth2/introspect", "token=\(access)", user: "rs", password: secret)
            #expect(status == 200)
            #expect(body["active"] as? Bool == true)
            #expect(body["sub"] as? String == "alice")
            #expect(body["scope"] as? String == "read write")

            // tokenctl introspect with the token on standard input.
            let introspected = try server.tokenctl(["tokens", "introspect", "-", "--output", "json"], input: access + "\n")
            #expect(introspected.status == 0, "\(introspected.stderr)")
            #expect(introspected.json?["active"] as? Bool == true)
            #expect(introspected.json?["client_id"] as? String == "rs")

            let revoked = try server.tokenctl(["revoke", "--token", access, "--reason", "test", "--output", "json"])
            #expect(revoked.status == 0, "\(revoked.stderr)")
            #expect(revoked.json?["revoked"] as? Int == 1)
            #expect((revoked.json?["seq"] as? Int ?? 0) > 0)

            let after = try await postForm(server.publicURL + "/oauth2/introspect", "token=\(access)", user: "rs", password: secret)
            #expect(after.0 == 200)
            #expect(after.1.count == 1 && after.1["active"] as? Bool == false)

            let inactive = try server.tokenctl(["tokens", "introspect", access, "--output", "json"])
            #expect(inactive.json?.count == 1 && inactive.json?["active"] as? Bool == false)

            let log = try server.tokenctl(["revocations", "list", "--output", "json"])
            #expect(log.status == 0)
            let entries = try #require(log.json?["entries"] as? [[String: Any]])
            #expect(entries.count == 1)
            #expect(entries.first?["reason"] as? String == "test")

            let status_ = try server.tokenctl(["status", "--output", "json"])
            #expect(status_.status == 0)
            let statusObject = try #require(status_.json)
            for key in [
                "watermark", "head", "lag_seconds", "cache_entries", "cache_bytes", "filter_entries", "cache_hit_ratio",
                "filter_bits_per_entry", "filter_false_positives",
            ] {
                #expect(statusObject[key] != nil, "status lacks \(key)")
            }
            #expect(statusObject["head"] as? Int == revoked.json?["seq"] as? Int)

            // The server's log never carries a token or a secret.
            #expect(!server.log.contains(access))
            #expect(!server.log.contains(secret))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func clientManagementAndSelectors(kind: StoreKind) async throws {
        try await Self.withServer(kind) { server in
            #expect(try server.tokenctl(["clients", "create", "app", "--role", "issue"]).status == 0)
            let list = try server.tokenctl(["clients", "list", "--output", "json"])
            #expect((list.json?["clients"] as? [[String: Any]])?.map { $0["client_id"] as? String } == ["app"])
            let table = try server.tokenctl(["clients", "list"])
            #expect(table.stdout.contains("CLIENT_ID") && table.stdout.contains("app"))

            let rotated = try server.tokenctl(["clients", "rotate-secret", "app", "--output", "json"])
            #expect(rotated.status == 0)
            #expect((rotated.json?["client_secret"] as? String)?.count == 43)

            for _ in 0..<3 { #expect(try server.tokenctl(["tokens", "issue", "--client", "app", "--subject", "carol"]).status == 0) }
            let bySubject = try server.tokenctl(["revoke", "--subject", "carol", "--reason", "reset", "--output", "json"])
            #expect(bySubject.json?["revoked"] as? Int == 3)
            let byClient = try server.tokenctl(["revoke", "--client", "app", "--output", "json"])
            #expect(byClient.json?["revoked"] as? Int == 0)

            #expect(try server.tokenctl(["clients", "delete", "app"]).status == 0)
            let missing = try server.tokenctl(["clients", "delete", "app"])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("not_found"))
        }
    }

    /// `--claim k=v…` (SPEC "tokenctl"): each is an extra string claim, split at the first `=`, so a
    /// value may hold `=` and `,` (the comma-separated `groups` claim TokenReview reads).
    @Test func claimsAreIssuedAsExtraStringClaims() async throws {
        try await Self.withServer(.sqlite) { server in
            #expect(try server.tokenctl(["clients", "create", "app", "--role", "issue"]).status == 0)
            let issued = try server.tokenctl([
                "tokens", "issue", "--client", "app", "--subject", "alice", "--claim", "groups=dev,ops", "--claim", "note=a=b",
                "--output", "json",
            ])
            #expect(issued.status == 0, "\(issued.stderr)")
            let token = try #require(issued.json?["access_token"] as? String)
            let introspected = try server.tokenctl(["tokens", "introspect", token, "--output", "json"])
            #expect(introspected.json?["groups"] as? String == "dev,ops", "\(introspected.stdout)")
            #expect(introspected.json?["note"] as? String == "a=b")
            #expect(try server.tokenctl(["tokens", "issue", "--client", "app", "--subject", "s", "--claim", "groups"]).status == 2)
        }
    }

    @Test func usageErrorsExitWith2() async throws {
        try await Self.withServer(.sqlite) { server in
            let none = try server.tokenctl(["revoke"])
            #expect(none.status == 2)
            #expect(none.stderr.contains("exactly one"))
            let two = try server.tokenctl(["revoke", "--subject", "a", "--client", "b"])
            #expect(two.status == 2)
            #expect(try server.tokenctl(["clients", "create", "x", "--role", "bogus"]).status == 2)
            #expect(try server.tokenctl(["tokens", "issue", "--client", "x"]).status == 2)
            #expect(try server.tokenctl(["no-such-command"]).status == 2)
            #expect(try server.tokenctl(["status", "--output", "yaml"]).status == 2)
        }
    }

    @Test func refusedCallsExitWith1AndPrintTheServersMessage() async throws {
        try await Self.withServer(.sqlite) { server in
            let wrongToken = try run(
                Binaries.tokenctl,
                ["status"],
                environment: ["TOKENCTL_SERVER": server.adminURL, "TOKENCTL_ADMIN_TOKEN": "wrong"]
            )
            #expect(wrongToken.status == 1)
            #expect(wrongToken.stderr.contains("unauthenticated"))
            #expect(!wrongToken.stderr.contains("Fatal error"))
            let duplicate = try server.tokenctl(["clients", "create", "dup"])
            #expect(duplicate.status == 0)
            let again = try server.tokenctl(["clients", "create", "dup"])
            #expect(again.status == 1)
            #expect(again.stderr.contains("already_exists"))
            let unknownClient = try server.tokenctl(["tokens", "issue", "--client", "ghost", "--subject", "s"])
            #expect(unknownClient.status == 1)
        }
    }

    @Test func unreachableServerNamesTheURL() throws {
        let result = try run(Binaries.tokenctl, ["status"], environment: ["TOKENCTL_SERVER": "http://127.0.0.1:9", "TOKENCTL_ADMIN_TOKEN": "x"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("http://127.0.0.1:9"))
    }

    @Test func findsTheDevAdminTokenOnLoopback() async throws {
        try await Self.withServer(.sqlite) { server in
            // No TOKENCTL_ADMIN_TOKEN: tokenctl reads $TOKEND_DATA_DIR/admin-token.
            let result = try run(
                Binaries.tokenctl,
                ["status", "--output", "json"],
                environment: ["TOKENCTL_SERVER": server.adminURL, "TOKEND_DATA_DIR": server.dataDir.path]
            )
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.json?["store"] as? String == "sqlite")
            let attributes = try FileManager.default.attributesOfItem(atPath: server.dataDir.appendingPathComponent("admin-token").path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        }
    }

    @Test func helpAndCompletionExitWith0() throws {
        let help = try run(Binaries.tokenctl, ["revoke", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("Examples"))
        let completion = try run(Binaries.tokenctl, ["--generate-completion-script", "bash"])
        #expect(completion.status == 0)
        #expect(completion.stdout.contains("tokenctl"))
    }
}

/// The embedded store keeps what it acknowledged through a kill -9, and refuses a second process.
@Suite(.serialized) struct EmbeddedStoreProcessTests {
    @Test func acknowledgedRevocationSurvivesKill9() async throws {
        let server = try TokendProcess()
        defer { try? FileManager.default.removeItem(at: server.dataDir) }
        #expect(try server.tokenctl(["clients", "create", "rs", "--role", "introspect"]).status == 0)
        let issued = try server.tokenctl(["tokens", "issue", "--client", "rs", "--subject", "dave", "--output", "json"])
        let access = try #require(issued.json?["access_token"] as? String)
        #expect(try server.tokenctl(["revoke", "--token", access]).status == 0)
        server.kill9()

        let restarted = try TokendProcess(dataDir: server.dataDir)
        defer { restarted.stop() }
        let result = try restarted.tokenctl(["tokens", "introspect", access, "--output", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.json?.count == 1 && result.json?["active"] as? Bool == false)
        let log = try restarted.tokenctl(["revocations", "list", "--output", "json"])
        #expect((log.json?["entries"] as? [Any])?.count == 1)
    }

    @Test func secondProcessOnTheSameDataDirIsRefused() async throws {
        let server = try TokendProcess()
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: server.dataDir)
        }
        var env = server.environment
        env.removeValue(forKey: "TOKEND_LOG_FORMAT")
        let second = try run(Binaries.tokend, ["serve"], environment: env.filter { $0.key.hasPrefix("TOKEND_") }, deadline: 30)
        #expect(second.status != 0)
        #expect(second.stderr.contains("another tokend process is using the data directory"))
        #expect(server.process.isRunning)
    }
}
