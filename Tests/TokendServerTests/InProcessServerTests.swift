import Foundation
import ServiceLifecycle
import Testing
import TokendCore
import TokendPostgres
import TokendServer
import TokendTestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The whole service, started in-process by `buildServiceGroup` exactly as `tokend serve` starts it,
/// on real sockets: the admin API registers a client and issues a token, the public API
/// introspects and revokes it, and a graceful shutdown stops the group.
@Suite struct InProcessServerTests {
    @Test(arguments: StoreKind.allCases)
    func wholeServiceServesAndStopsGracefully(kind: StoreKind) async throws {
        var stopped: TokendServer?
        try await withLiveServer(kind) { server, urls in
            let admin = AdminAPI(url: urls.admin, token: server.adminToken)
            let created = try await admin.call("CreateClient", ["client_id": "rs", "roles": ["introspect"]])
            let secret = try #require(created["client_secret"] as? String)
            let issued = try await admin.call("IssueToken", ["client_id": "rs", "subject": "alice"])
            let token = try #require(issued["access_token"] as? String)

            let active = try await postForm(urls.public + "/oauth2/introspect", "token=\(token)", user: "rs", password: secret)
            #expect(active.0 == 200 && active.1["active"] as? Bool == true && active.1["sub"] as? String == "alice", "\(active)")
            let revoked = try await postForm(urls.public + "/oauth2/revoke", "token=\(token)", user: "rs", password: secret)
            #expect(revoked.0 == 200)
            let after = try await postForm(urls.public + "/oauth2/introspect", "token=\(token)", user: "rs", password: secret)
            #expect(after.0 == 200 && after.1.count == 1 && after.1["active"] as? Bool == false, "\(after)")
            stopped = server
        }
        #expect(stopped?.replica.isDraining == true)
    }

    /// Without token memory every introspection reads PostgreSQL, on the fast path through its
    /// reader's connections (`PostgresBatchReader`): many at once, known and unknown tokens, and a
    /// token revoked in between.
    @Test func everyIntrospectionReadsPostgreSQLThroughTheFastPath() async throws {
        try await withLiveServer(.postgres, settings: ["TOKEND_CACHE_ENTRIES": "0"]) { server, urls in
            let admin = AdminAPI(url: urls.admin, token: server.adminToken)
            let created = try await admin.call("CreateClient", ["client_id": "rs", "roles": ["introspect"]])
            let secret = try #require(created["client_secret"] as? String)
            var tokens: [String] = []
            for subject in ["alice", "bob", "carol"] {
                let issued = try await admin.call("IssueToken", ["client_id": "rs", "subject": subject])
                tokens.append(try #require(issued["access_token"] as? String))
            }
            let unknown = "tkd_at_" + String(repeating: "Q", count: 43)
            let asked = (0..<30).map { $0 % 4 == 3 ? unknown : tokens[$0 % 4] }
            /// Status, `active`, `sub` and how many members the answer has.
            typealias Answer = (status: Int, active: Bool?, subject: String?, members: Int)
            let answers = try await withThrowingTaskGroup(of: (Int, Answer).self) { group in
                for (index, token) in asked.enumerated() {
                    group.addTask {
                        let (status, body) = try await postForm(urls.public + "/oauth2/introspect", "token=\(token)", user: "rs", password: secret)
                        return (index, (status, body["active"] as? Bool, body["sub"] as? String, body.count))
                    }
                }
                var answers: [Int: Answer] = [:]
                for try await (index, answer) in group { answers[index] = answer }
                return answers
            }
            for (index, token) in asked.enumerated() {
                let answer = try #require(answers[index])
                #expect(answer.status == 200)
                if token == unknown {
                    #expect(answer.members == 1 && answer.active == false, "\(answer)")
                } else {
                    #expect(answer.active == true && answer.subject == ["alice", "bob", "carol"][index % 4], "\(answer)")
                }
            }
            let revoked = try await postForm(urls.public + "/oauth2/revoke", "token=\(tokens[1])", user: "rs", password: secret)
            #expect(revoked.0 == 200)
            let after = try await postForm(urls.public + "/oauth2/introspect", "token=\(tokens[1])", user: "rs", password: secret)
            #expect(after.0 == 200 && after.1.count == 1 && after.1["active"] as? Bool == false, "\(after)")
            // Read on the fast path's own connections, not through the router's pool.
            let database = try #require(urls.database)
            let readers = try await sessions(of: database, applicationName: PostgresBatchReader.applicationName)
            #expect((1...2).contains(readers), "\(readers) connections of the fast path's reader")
        }
    }
}

/// Polls `condition` every 20 ms until it yields a value; fails after 30 s (a guard against
/// hanging, not a timing assertion).
func waitFor<T>(_ what: String, _ condition: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if let value = try? await condition() { return value }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestSetupError("\(what): not within 30 s")
}

func get(_ url: String) async throws -> Int {
    let (_, response) = try await URLSession.shared.data(from: URL(string: url)!)
    return (response as? HTTPURLResponse)?.statusCode ?? 0
}

/// A form POST with Basic credentials; the status and the JSON object answered.
func postForm(_ url: String, _ body: String, user: String, password: String) async throws -> (Int, [String: Any]) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
    request.setValue("Basic " + Data("\(user):\(password)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
    request.httpBody = Data(body.utf8)
    let (data, response) = try await URLSession.shared.dataIgnoringCancellation(for: request)
    let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
}

/// `tokend.v1.AdminService` over Connect with the JSON codec.
struct AdminAPI {
    let url: String
    let token: String

    func call(_ method: String, _ body: [String: Any]) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: "\(url)/tokend.v1.AdminService/\(method)")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.dataIgnoringCancellation(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else { throw TestSetupError("\(method): \(status) \(String(decoding: data, as: UTF8.self))") }
        return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }
}
