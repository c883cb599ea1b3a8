import Foundation
import Testing
import TokendTestSupport

/// `tokenctl audit list` against a live `tokend` on each store, and the same events in its JSON
/// log: actor, request id (the access log line's), action and target, never a secret or token.
@Suite(.serialized) struct AuditTests {
    @Test(arguments: StoreKind.allCases)
    func auditListShowsAdminActionsAndTheLogCarriesTheSameEvents(kind: StoreKind) async throws {
        try await TokenctlTests.withServer(kind) { server in
            let created = try server.tokenctl(["clients", "create", "rs", "--role", "introspect", "--output", "json"])
            #expect(created.status == 0, "\(created.stderr)")
            let secret = try #require(created.json?["client_secret"] as? String)
            let issued = try server.tokenctl(["tokens", "issue", "--client", "rs", "--subject", "alice", "--refresh", "--output", "json"])
            #expect(issued.status == 0, "\(issued.stderr)")
            let access = try #require(issued.json?["access_token"] as? String)
            let refresh = try #require(issued.json?["refresh_token"] as? String)
            let grant = try #require(issued.json?["grant_id"] as? String)
            #expect(try server.tokenctl(["revoke", "--subject", "alice", "--reason", "offboarded"]).status == 0)

            // JSON: every event, oldest first, with its fields.
            let listed = try server.tokenctl(["audit", "list", "--output", "json"])
            #expect(listed.status == 0, "\(listed.stderr)")
            let json = try #require(listed.json)
            let events = try #require(json["events"] as? [[String: Any]])
            #expect(events.map { $0["action"] as? String } == ["client.create", "token.issue", "revoke"])
            #expect(events.map { $0["target"] as? String } == ["rs", grant, "alice"])
            #expect(events.map { $0["target_kind"] as? String } == ["client", "grant", "subject"])
            #expect(events.allSatisfy { $0["actor"] as? String == "admin" && ($0["request_id"] as? String)?.isEmpty == false })
            #expect(events.allSatisfy { ($0["seq"] as? Int ?? 0) > 0 && ($0["at"] as? Int ?? 0) > 1_700_000_000 })
            #expect((events[2]["detail"] as? [String: String])?["reason"] == "offboarded")
            #expect(json["next_after_seq"] as? Int == 0)

            // Filters, and --limit with its resume point.
            func count(_ arguments: [String]) throws -> Int? {
                let result = try server.tokenctl(["audit", "list", "--output", "json"] + arguments)
                #expect(result.status == 0, "\(arguments): \(result.stderr)")
                return (result.json?["events"] as? [Any])?.count
            }
            #expect(try count(["--actor", "admin"]) == 3)
            #expect(try count(["--actor", "somebody-else"]) == 0)
            #expect(try count(["--since", "1h"]) == 3)
            #expect(try count(["--since", "2999-01-01T00:00:00Z"]) == 0)
            let limited = try server.tokenctl(["audit", "list", "--limit", "2", "--output", "json"])
            #expect((limited.json?["events"] as? [Any])?.count == 2)
            let resume = try #require(limited.json?["next_after_seq"] as? Int)
            #expect(resume > 0)
            #expect(try count(["--after", "\(resume)"]) == 1)
            #expect(try server.tokenctl(["audit", "list", "--since", "yesterday"]).status == 2)

            // The table for people.
            let table = try server.tokenctl(["audit", "list", "--actor", "admin"])
            #expect(table.status == 0, "\(table.stderr)")
            let lines = table.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("SEQ") == true && lines.count == 4)
            #expect(lines.contains { $0.contains("client.create") && $0.contains("client:rs") && $0.contains("admin") })

            // The JSON log has one `event=audit` line per event, with the request id of the
            // admin request's access log line.
            var logged: [[String: Any]] = []
            try await poll(until: "three audit log lines") {
                logged = server.log.split(separator: "\n").compactMap { line in
                    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
                }.filter { $0["event"] as? String == "audit" }
                return logged.count >= 3
            }
            #expect(logged.count == 3)
            #expect(logged.map { $0["action"] as? String } == ["client.create", "token.issue", "revoke"])
            #expect(logged.map { $0["target"] as? String } == ["rs", grant, "alice"])
            #expect(logged.map { $0["request_id"] as? String } == events.map { $0["request_id"] as? String })
            #expect(logged.allSatisfy { $0["actor"] as? String == "admin" && $0["msg"] as? String == "audit" })
            #expect(logged[2]["detail_reason"] as? String == "offboarded")
            let requests = server.log.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }.filter { $0["msg"] as? String == "request" }
            let createRequest = requests.first { ($0["route"] as? String)?.hasSuffix("AdminService/CreateClient") == true }
            #expect(createRequest?["request_id"] as? String == logged[0]["request_id"] as? String)

            for text in [server.log, listed.stdout, table.stdout] {
                for value in [secret, access, refresh, server.adminToken] {
                    #expect(!text.contains(value), "a secret or raw token in the audit output or log")
                }
            }
        }
    }
}
