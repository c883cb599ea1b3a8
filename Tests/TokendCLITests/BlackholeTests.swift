import Foundation
import Testing
import TokendTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A database that stops answering without closing anything (every PostgreSQL process SIGSTOPped:
/// connections stay open, nothing answers, nothing is reset), as an operator found it (issue 15):
/// every store call must still answer within `TOKEND_STORE_TIMEOUT` on every path, and the replicas
/// must recover once the database answers again.
@Suite(.serialized) struct BlackholeTests {
    /// `TOKEND_STORE_TIMEOUT` of the replicas.
    static let limit: TimeInterval = 2
    /// How long past the limit an answer may take on a busy machine before the test calls it a hang.
    static let margin: TimeInterval = 8

    @Test func everyPathAnswers503WithinTheLimitWhileTheDatabaseIsFrozenAndRecovers() async throws {
        let postgres = try await PrivatePostgres.start()
        defer { postgres.destroy() }
        try await Cluster.run(
            replicas: 2,
            databaseURL: postgres.url,
            environment: ["TOKEND_STORE_TIMEOUT": "2s", "TOKEND_LOG_LEVEL": "info"]
        ) { replicas in
            let (a, b) = (replicas[0], replicas[1])
            let rs = try await a.createClient("rs", roles: ["introspect", "revoke"])
            // Issued through A and never asked of B: B must read the store for them.
            let revoked = try await a.issue(client: "rs", subject: "mallory").accessToken
            let unseen = try await a.issue(client: "rs", subject: "alice").accessToken
            let later = try await a.issue(client: "rs", subject: "bob").accessToken
            // Every client record in memory is fine; authenticating once per replica warms them.
            for replica in replicas { #expect(try await replica.introspect(later, as: rs).active == true) }

            let frozen = try postgres.signalEveryProcess(SIGSTOP)
            defer { _ = try? postgres.signalEveryProcess(SIGCONT) }
            print("blackhole: stopped \(frozen.count) PostgreSQL processes")

            // All at once, as traffic would: revocation on A, store-bound introspections on B,
            // readiness on both. Each must answer (no hang), and with 503.
            let ceiling = Self.limit + Self.margin
            let started = Date()
            async let revokeOnA = Self.timed { try await a.revoke(revoked, as: rs, timeout: ceiling) }
            async let introspectOnB = Self.timed { try await b.introspect(unseen, as: rs, timeout: ceiling) }
            async let secondOnB = Self.timed { try await b.introspect(revoked, as: rs, timeout: ceiling) }
            async let readyA = Self.timed { try await a.readinessAnswer(timeout: ceiling) }
            async let readyB = Self.timed { try await b.readinessAnswer(timeout: ceiling) }
            let answers = try await [
                ("revoke on A", revokeOnA), ("introspect on B", introspectOnB),
                ("second introspect on B", secondOnB), ("/readyz on A", readyA), ("/readyz on B", readyB),
            ]
            print(
                "blackhole: "
                    + answers.map { "\($0.0): \($0.1.answer.status) after \(String(format: "%.2f", $0.1.seconds)) s" }
                    .joined(separator: "; ") + " (all within \(String(format: "%.2f", Date().timeIntervalSince(started))) s)"
            )
            for (what, timed) in answers {
                #expect(timed.answer.status == 503, "\(what): \(timed.answer)")
                #expect(timed.seconds < ceiling, "\(what) took \(timed.seconds) s")
            }
            for (what, timed) in answers.prefix(3) {
                #expect(timed.answer.error == "temporarily_unavailable", "\(what): \(timed.answer)")
                #expect(timed.answer.headers["retry-after"] != nil, "\(what): no Retry-After")
            }
            // Later calls too (each has its own limit; none waits for an earlier one's connection).
            let again = try await Self.timed { try await a.revoke(revoked, as: rs, timeout: ceiling) }
            #expect(again.answer.status == 503, "revoke on A again: \(again.answer)")

            _ = try postgres.signalEveryProcess(SIGCONT)
            try await eventually("A revokes again", within: .seconds(30), every: .milliseconds(100)) {
                try await a.revoke(revoked, as: rs, timeout: ceiling).status == 200
            }
            try await eventually("B answers from the store again", within: .seconds(30), every: .milliseconds(100)) {
                try await b.introspect(unseen, as: rs, timeout: ceiling).active == true
            }
            try await eventually("B sees the revocation", within: .seconds(30), every: .milliseconds(100)) {
                try await b.introspect(revoked, as: rs, timeout: ceiling).active == false
            }
            for replica in replicas {
                try await eventually("\(replica) ready again", within: .seconds(30), every: .milliseconds(100)) {
                    try await replica.readiness(timeout: ceiling) == 200
                }
            }
        }
    }

    /// An answer and how long it took.
    static func timed(_ request: () async throws -> HTTPAnswer) async throws -> (answer: HTTPAnswer, seconds: TimeInterval) {
        let started = Date()
        let answer = try await request()
        return (answer, Date().timeIntervalSince(started))
    }
}
