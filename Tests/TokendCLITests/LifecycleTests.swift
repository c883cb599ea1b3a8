import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TokendTestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

final class AnswerCounter: Sendable {
    let count = Atomic<Int>(0)
    /// Set once SIGTERM is sent.
    let sigtermSent = Atomic<Bool>(false)
}

/// SIGTERM: `/readyz` turns 503 at once, requests keep being served through the shutdown delay,
/// in-flight requests complete, and the process exits 0.
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
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(taken, $0, length) == 0 && listen(taken, 1) == 0 && getsockname(taken, $0, &length) == 0 }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-port-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        var env = ["TOKEND_DATA_DIR": dataDir.path, "TOKEND_HTTP_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_ADDR": "127.0.0.1:0", "TOKEND_GRPC_ADDR": "127.0.0.1:0"]
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

        let deadline = Date().addingTimeInterval(30)
        while server.process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!server.process.isRunning)
        #expect(server.process.terminationStatus == 0)
    }
}
