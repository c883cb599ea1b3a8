import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import SwiftProtobuf
import Testing
import TokendCore
import TokendGRPC
import TokendProto
import TokendServer
import TokendTestSupport


/// The guessing limits on a live server (real sockets, so the peer address is known): the same
/// per-replica counters refuse in every dialect, `429` with `Retry-After` over HTTP and
/// `RESOURCE_EXHAUSTED` over gRPC, and a client that authenticates correctly is never slowed.
@Suite struct GuessLimitServingTests {
    @Test func secretGuessingAndTokenScanningAreRefusedInEveryDialect() async throws {
        let limits = ["TOKEND_AUTH_FAILURES_PER_MINUTE": "5", "TOKEND_UNKNOWN_TOKENS_PER_MINUTE": "3"]
        // The replica's clock stands still: the counts are per minute, and on a busy machine this
        // test has taken 89 s (the first failures had left the window before the gRPC call).
        let clock = ManualClock(Date())
        try await InProcess.run(extra: limits, now: clock.now) { server, tokend, grpc in
            let urls = try #require(server.listening.urls)
            let (_, rsSecret) = try await tokend.registry.create(id: "rs", roles: ["introspect"], audiences: [])
            let (_, goodSecret) = try await tokend.registry.create(id: "good", roles: ["introspect"], audiences: [])
            let issued = try await tokend.issuer.issue(IssueRequest(clientID: "good", subject: "alice")).accessToken
            let introspect = urls.public + "/oauth2/introspect"

            // Five wrong secrets for rs: 401 each; the sixth is past the limit: 429 with Retry-After.
            for _ in 0..<5 {
                #expect(try await Form.post(introspect, "token=\(issued)", user: "rs", password: "wrong").status == 401)
            }
            let sixth = try await Form.post(introspect, "token=\(issued)", user: "rs", password: "wrong")
            #expect(sixth.status == 429 && sixth.json["error"] as? String == "too_many_requests", "\(sixth)")
            #expect(Int(sixth.retryAfter ?? "") != nil, "Retry-After: \(sixth.retryAfter ?? "none")")
            // rs from this address is refused before its secret is checked, even the right one …
            #expect(try await Form.post(introspect, "token=\(issued)", user: "rs", password: rsSecret).status == 429)
            // … and over gRPC too; while a client without failures here is never slowed.
            #expect(try await Form.post(introspect, "token=\(issued)", user: "good", password: goodSecret).status == 200)
            try await withGRPCClient(transport: grpc.transport()) { client in
                let introspection = Tokend_V1_IntrospectionService.Client(wrapping: client)
                let rs: Metadata = ["authorization": .string(InProcess.basic("rs", rsSecret))]
                let good: Metadata = ["authorization": .string(InProcess.basic("good", goodSecret))]
                do {
                    _ = try await introspection.introspect(.with { $0.token = issued }, metadata: rs)
                    Issue.record("rs was not slowed over gRPC")
                } catch let error as RPCError {
                    #expect(error.code == .resourceExhausted, "\(error)")
                }
                #expect(try await introspection.introspect(.with { $0.token = issued }, metadata: good).active)

                // Token scanning: good asks about never-issued tokens; past 3 it is refused in every
                // dialect, while its asks about a real token did not count.
                for index in 0..<4 {
                    let unknown = "tkd_at_" + String(repeating: "s", count: 42) + String(index)
                    #expect(try await !introspection.introspect(.with { $0.token = unknown }, metadata: good).active)
                }
                do {
                    _ = try await introspection.introspect(.with { $0.token = issued }, metadata: good)
                    Issue.record("a scanning caller was not slowed over gRPC")
                } catch let error as RPCError {
                    #expect(error.code == .resourceExhausted, "\(error)")
                }
            }
            let scanned = try await Form.post(introspect, "token=\(issued)", user: "good", password: goodSecret)
            #expect(scanned.status == 429 && scanned.retryAfter != nil, "\(scanned)")

            // Each refused request is counted once, whichever paths looked at it first (the byte
            // path and the fast path hand a refused request on to the router, which refuses it):
            // over HTTP the sixth and the right secret, over gRPC one, for rs; for good's scanning
            // one over gRPC and one over HTTP.
            let refusals = try await Self.refusals(adminURL: urls.admin)
            #expect(refusals["authentication"] == 3, "\(refusals)")
            #expect(refusals["unknown_token"] == 2, "\(refusals)")
        }
    }
}

extension GuessLimitServingTests {
    /// `tokend_guess_refusals_total` by `kind`, from the admin listener's `/metrics`.
    static func refusals(adminURL: String) async throws -> [String: Int] {
        let (data, _) = try await URLSession.shared.data(from: try #require(URL(string: adminURL + "/metrics")))
        var counts: [String: Int] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("tokend_guess_refusals") {
            guard let open = line.range(of: "kind=\""), let close = line[open.upperBound...].firstIndex(of: "\""),
                let value = line.split(separator: " ").last.flatMap({ Double($0) })
            else { continue }
            counts[String(line[open.upperBound..<close]), default: 0] += Int(value)
        }
        return counts
    }
}

/// A form POST with Basic credentials, by curl (URLSession on Linux can stall on a 401 that carries a
/// Basic challenge, which these tests provoke on purpose).
enum Form {
    struct Answer: CustomStringConvertible {
        var status: Int
        var json: [String: Any]
        var retryAfter: String?
        var description: String { "\(status) \(json) Retry-After: \(retryAfter ?? "-")" }
    }

    static func post(_ url: String, _ body: String, user: String, password: String) async throws -> Answer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-form-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bodyFile = directory.appendingPathComponent("body")
        let headersFile = directory.appendingPathComponent("headers")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "curl", "-s", "--max-time", "60", "-o", bodyFile.path, "-D", headersFile.path, "-w", "%{http_code}",
            "-u", "\(user):\(password)", "-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", body, url,
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let status = Int(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) ?? 0
        process.waitUntilExit()
        let data = (try? Data(contentsOf: bodyFile)) ?? Data()
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let headers = (try? String(contentsOf: headersFile, encoding: .utf8)) ?? ""
        let retryAfter = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("retry-after:") }
            .map { $0.dropFirst("retry-after:".count).trimmingCharacters(in: .whitespaces) }
        return Answer(status: status, json: json, retryAfter: retryAfter)
    }
}
