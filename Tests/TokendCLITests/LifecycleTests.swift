import Foundation
import Synchronization
import Testing
import TokendTestSupport

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

final class AnswerCounter: Sendable {
    let count = Atomic<Int>(0)
    /// Set once SIGTERM is sent.
    let sigtermSent = Atomic<Bool>(false)
}

extension ClusterSuites {
    /// SIGTERM: `/readyz` turns 503 at once, requests keep being served through the shutdown delay,
    /// in-flight requests complete within the drain period, and the process exits 0; a request
    /// still waiting when the drain period ends does not keep the process. Among the cluster suites:
    /// these start `tokend serve` processes and time their exits.
    @Suite(.serialized) struct LifecycleTests {
        static func get(_ url: String) async -> (Int, String)? {
            var request = URLRequest(url: URL(string: url)!)
            request.timeoutInterval = 5
            guard let (data, response) = try? await URLSession.shared.dataIgnoringCancellation(for: request) else { return nil }
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        }

        /// A listener whose port is taken ends `tokend serve` with exit status 1 and the reason, not a
        /// crash: the failed group cancels its services, and the embedded store still closes (it used to
        /// trip SQLiteNIO's "not closed before deinitializing" assertion).
        @Test(arguments: ["TOKEND_HTTP_ADDR", "TOKEND_GRPC_ADDR"])
        func aTakenPortEndsServeWithItsReason(variable: String) throws {
            let taken = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(taken) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(taken, $0, length) == 0 && listen(taken, 1) == 0 && getsockname(taken, $0, &length) == 0
                }
            }
            #expect(bound)
            let port = Int(UInt16(bigEndian: address.sin_port))
            let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-port-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dataDir) }
            var env = [
                "TOKEND_DATA_DIR": dataDir.path, "TOKEND_HTTP_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_ADDR": "127.0.0.1:0",
                "TOKEND_GRPC_ADDR": "127.0.0.1:0",
            ]
            env[variable] = "127.0.0.1:\(port)"
            let result = try run(Binaries.tokend, ["serve"], environment: env, deadline: 60)
            #expect(result.status == 1, "exit \(result.status): \(result.stderr.suffix(1500))")
            #expect(result.stderr.contains("Address already in use"))
            #expect(!result.stderr.contains("Assertion failed") && !result.stderr.contains("Fatal error"))
        }

        @Test func sigtermDrainsAndExitsZero() async throws {
            // The delay only has to outlast what the test does inside it (a few requests); generous,
            // so that a busy machine cannot make the listeners close before the test looks.
            let server = try TokendProcess(environment: ["TOKEND_SHUTDOWN_DELAY": "8s"])
            defer { try? FileManager.default.removeItem(at: server.dataDir) }
            #expect(try server.tokenctl(["clients", "create", "rs", "--role", "introspect", "--output", "json"]).status == 0)
            let secret = try #require(try server.tokenctl(["clients", "rotate-secret", "rs", "--output", "json"]).json?["client_secret"] as? String)
            let issued = try server.tokenctl(["tokens", "issue", "--client", "rs", "--subject", "s", "--output", "json"])
            let token = try #require(issued.json?["access_token"] as? String)
            #expect(await Self.get(server.publicURL + "/readyz")?.0 == 200)

            // Keep introspecting from 8 workers across the SIGTERM, until each has had an answer sent
            // after it (inside the delay, however fast or slow the machine, rather than until a fixed
            // time); every answer must be a complete 200.
            let started = Date()
            let publicURL = server.publicURL
            let pid = server.process.processIdentifier
            let answered = AnswerCounter()
            let outcomes = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var statuses: [Int] = []
                        var answeredAfterSigterm = false
                        while !answeredAfterSigterm, Date().timeIntervalSince(started) < 30 {
                            let after = answered.sigtermSent.load(ordering: .acquiring)
                            let (status, body) = try await postForm(publicURL + "/oauth2/introspect", "token=\(token)", user: "rs", password: secret)
                            statuses.append(body["active"] as? Bool == true ? status : -status)
                            answered.count.add(1, ordering: .relaxed)
                            answeredAfterSigterm = after
                        }
                        return statuses
                    }
                }
                // SIGTERM once the workers are demonstrably mid-stream.
                try await eventually("40 answers before SIGTERM", within: .seconds(60), every: .milliseconds(5)) {
                    answered.count.load(ordering: .relaxed) >= 40
                }
                kill(pid, SIGTERM)
                answered.sigtermSent.store(true, ordering: .releasing)
                var all: [Int] = []
                for try await statuses in group { all += statuses }
                return all
            }
            #expect(!outcomes.isEmpty)
            #expect(outcomes.allSatisfy { $0 == 200 }, "answers during shutdown: \(Set(outcomes))")

            // Still within the delay: not ready (once the signal has been handled), but alive and serving.
            var ready: (Int, String)?
            try await eventually("/readyz 503 after SIGTERM", within: .seconds(5), every: .milliseconds(10)) {
                ready = await Self.get(server.publicURL + "/readyz")
                return ready?.0 != 200
            }
            #expect(ready?.0 == 503)
            #expect(ready?.1.contains("shutting down") == true)
            #expect(await Self.get(server.publicURL + "/healthz")?.0 == 200)

            try await eventually("the server exits after SIGTERM", within: .seconds(30)) { !server.process.isRunning }
            #expect(!server.process.isRunning)
            #expect(server.process.terminationStatus == 0)
        }
        // MARK: The drain period (TOKEND_DRAIN_PERIOD)

        /// A `tokend serve` on a fresh PostgreSQL database with `environment`, client `rs` (role
        /// introspect) and a token of its; without a token cache, so that every introspection looks
        /// the token up in the store, where a lock on `tokens` can hold it. The store limit is far
        /// above anything the tests wait for: only the drain period may end a held-up request.
        static func withServer(
            _ environment: [String: String],
            _ body: (TokendProcess, _ database: String, _ introspect: @escaping @Sendable () async throws -> HTTPAnswer) async throws -> Void
        ) async throws {
            let (database, url) = try await createDatabase()
            do {
                var env = environment
                env["TOKEND_DATABASE_URL"] = url
                env["TOKEND_ADMIN_TOKEN"] = "drain-test-admin-token"
                env["TOKEND_CACHE_ENTRIES"] = "0"
                env["TOKEND_STORE_TIMEOUT"] = "600s"
                let started = env
                // Starting waits for the listeners by polling the log: off the cooperative pool.
                let server = try await offPool { Unchecked(try TokendProcess(environment: started)) }.value
                defer {
                    server.stop()
                    try? FileManager.default.removeItem(at: server.dataDir)
                }
                let created = try server.tokenctl(["clients", "create", "rs", "--role", "introspect", "--output", "json"])
                let rs = ClientCredentials(id: "rs", secret: try #require(created.json?["client_secret"] as? String, "\(created.stderr)"))
                let issued = try server.tokenctl(["tokens", "issue", "--client", "rs", "--subject", "s", "--output", "json"])
                let token = try #require(issued.json?["access_token"] as? String, "\(issued.stderr)")
                let publicURL = server.publicURL
                try await body(server, database) {
                    try await ClusterHTTP.send(
                        publicURL + "/oauth2/introspect",
                        body: Data("token=\(token)".utf8),
                        headers: ["Authorization": rs.basic, "Content-Type": "application/x-www-form-urlencoded"]
                    )
                }
            } catch {
                try await dropDatabase(database)
                throw error
            }
            try await dropDatabase(database)
        }

        /// SIGTERM while an introspection waits in the store: the listeners stop taking connections,
        /// but the process waits for the request (the drain); once the store answers, the request gets
        /// its complete answer and then the process exits 0. Without the drain, the request would be
        /// cut off with the listener.
        @Test func anInFlightRequestIsAnsweredDuringTheDrainAndTheProcessExitsAfterIt() async throws {
            try await Self.withServer(["TOKEND_DRAIN_PERIOD": "120s"]) { server, database, introspect in
                try await DatabaseProbe.withTableLock("ACCESS EXCLUSIVE", on: ["tokens"], in: database) { lock in
                    let request = Task { try await introspect() }
                    try await eventually("the introspection waits for the lock", within: .seconds(30)) { try await lock.waiting() >= 1 }
                    kill(server.process.processIdentifier, SIGTERM)
                    try await eventually("the public listener stops taking connections", within: .seconds(30)) {
                        await Self.get(server.publicURL + "/healthz") == nil
                    }
                    #expect(server.process.isRunning, "the process exited with a request in flight")
                    lock.release()
                    let answer = try await request.value
                    #expect(answer.status == 200 && answer.active == true, "\(answer)")
                }
                try await eventually("the process exits", within: .seconds(60)) { !server.process.isRunning }
                #expect(server.process.terminationStatus == 0, "\(server.log.suffix(1500))")
            }
        }

        /// SIGTERM while an introspection waits in a store that will not answer: the process exits
        /// once the drain period (3 s) is over, not before, and not only when the request ends (the
        /// store limit is 600 s). The request cut off is answered 503 or not at all, never inactive: its
        /// token is valid.
        @Test func theDrainPeriodBoundsTheWaitForAnInFlightRequest() async throws {
            try await Self.withServer(["TOKEND_DRAIN_PERIOD": "3s"]) { server, database, introspect in
                try await DatabaseProbe.withTableLock("ACCESS EXCLUSIVE", on: ["tokens"], in: database) { lock in
                    let request = Task { try? await introspect() }
                    try await eventually("the introspection waits for the lock", within: .seconds(30)) { try await lock.waiting() >= 1 }
                    let signalled = ContinuousClock.now
                    kill(server.process.processIdentifier, SIGTERM)
                    try await eventually("the process exits while the request still waits", within: .seconds(60), every: .milliseconds(10)) {
                        !server.process.isRunning
                    }
                    let exitedAfter = ContinuousClock.now - signalled
                    #expect(exitedAfter >= .seconds(3), "exited \(exitedAfter) after SIGTERM, within the drain period")
                    #expect(server.process.terminationReason == .exit && server.process.terminationStatus == 0, "\(server.log.suffix(1500))")
                    let answer = await request.value
                    #expect(answer?.active != false, "a valid token was answered inactive: \(String(describing: answer))")
                    print(
                        "LifecycleTests: drain period 3 s, exited \(exitedAfter) after SIGTERM with status \(server.process.terminationStatus); the request cut off got \(answer.map { "\($0)" } ?? "no answer")"
                    )
                }
            }
        }
    }
}
