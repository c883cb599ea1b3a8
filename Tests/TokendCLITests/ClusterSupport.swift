import Foundation
import Synchronization
import Testing
import TokendTestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// HTTP for the cluster tests: one session with enough connections per host for concurrent load.
enum ClusterHTTP {
    /// Requests give up after 90 s: a guard against hanging, above the replicas' own 30 s store
    /// limit, so that on a busy machine a slow answer is the replica's to give (or its 503), not a
    /// client-side timeout.
    static let session = makeSession(timeout: 90)
    /// Requests give up after 10 s (URLSession on Linux ignores a request's own timeoutInterval).
    static let shortSession = makeSession(timeout: 10)

    private static func makeSession(timeout: TimeInterval) -> URLSession {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        return URLSession(configuration: configuration)
    }

    static func send(
        _ url: String,
        method: String = "POST",
        body: Data? = nil,
        headers: [String: String] = [:],
        timeout: TimeInterval = 90
    ) async throws -> HTTPAnswer {
        var request = URLRequest(url: URL(string: url)!, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await (timeout <= 10 ? shortSession : session).dataIgnoringCancellation(for: request)
        let http = response as? HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http?.allHeaderFields ?? [:] {
            if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
        }
        return HTTPAnswer(status: http?.statusCode ?? 0, body: data, headers: fields)
    }
}

/// A status and body, Sendable; JSON parsed on demand.
struct HTTPAnswer: Sendable, CustomStringConvertible {
    var status: Int
    var body: Data
    /// Header fields, by lower-cased name.
    var headers: [String: String] = [:]

    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
    /// RFC 7662 `active`, if the body carries it.
    var active: Bool? { json["active"] as? Bool }
    /// OAuth `error`, if the body carries it.
    var error: String? { json["error"] as? String }
    var text: String { String(decoding: body, as: UTF8.self) }
    var description: String { "\(status) \(text.prefix(300))" }
}

struct ClientCredentials: Sendable {
    var id: String
    var secret: String

    var basic: String { "Basic " + Data("\(id):\(secret)".utf8).base64EncodedString() }
}

struct IssuedToken: Sendable {
    var accessToken: String
    var refreshToken: String?
    var grantID: String
    var jti: String
}

/// One running `tokend serve`, by its addresses (Sendable, unlike the process that owns it).
struct Replica: Sendable, CustomStringConvertible {
    var name: String
    var publicURL: String
    var adminURL: String
    /// `http://host:port` of the gRPC listener.
    var grpcURL: String = ""
    /// The process, for tests that kill it (`Cluster.run` copes with a replica that is gone).
    var pid: Int32 = 0
    var logURL: URL

    var description: String { name }

    /// `TOKEND_REVOCATION_UPSTREAM` for following this replica as `client`.
    func upstreamURL(as client: ClientCredentials) -> String {
        let encoded = client.secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? client.secret
        return grpcURL.replacingOccurrences(of: "://", with: "://\(client.id):\(encoded)@")
    }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// AdminService over Connect JSON on the admin listener.
    func admin(_ method: String, _ body: [String: Any]) async throws -> HTTPAnswer {
        try await ClusterHTTP.send(
            adminURL + "/tokend.v1.AdminService/" + method,
            body: try JSONSerialization.data(withJSONObject: body),
            headers: ["Authorization": "Bearer \(Cluster.adminToken)", "Content-Type": "application/json"]
        )
    }

    func createClient(_ id: String, roles: [String]) async throws -> ClientCredentials {
        var (answer, retried) = try await setUp("CreateClient", ["client_id": id, "roles": roles])
        if retried, answer.status == 409 {
            // The call that answered 503 had created the client after all: a new secret for it.
            (answer, _) = try await setUp("RotateClientSecret", ["client_id": id])
        }
        guard answer.status == 200, let secret = answer.json["client_secret"] as? String else {
            throw TestSetupError("CreateClient on \(name): \(answer)")
        }
        return ClientCredentials(id: id, secret: secret)
    }

    /// An admin call that sets up a test, asked again while it answers 503 (its store call passed
    /// the store limit), within a guard of two minutes. Some tests give the store a short limit so
    /// that faults show quickly (2 s), and beside two CPU hogs an ordinary call sometimes takes
    /// longer. No test asks `createClient` or `issue` for a 503: those that expect one call
    /// `admin` directly.
    /// `retried`: a 503 came first (the call may have taken effect all the same).
    private func setUp(_ method: String, _ body: [String: Any]) async throws -> (answer: HTTPAnswer, retried: Bool) {
        var answer = try await admin(method, body)
        var retried = false
        try await poll(until: "\(method) on \(name) answered other than 503", within: .seconds(120)) {
            guard answer.status == 503 else { return true }
            retried = true
            answer = try await admin(method, body)
            return false
        }
        return (answer, retried)
    }

    /// AdminService/IssueToken, asked again while it answers 503 (`setUp`).
    func issue(client: String, subject: String, refresh: Bool = false) async throws -> IssuedToken {
        var body: [String: Any] = ["client_id": client, "subject": subject]
        if refresh { body["refresh"] = true }
        let (answer, _) = try await setUp("IssueToken", body)
        let json = answer.json
        guard answer.status == 200, let access = json["access_token"] as? String, let grant = json["grant_id"] as? String,
            let jti = json["jti"] as? String
        else {
            throw TestSetupError("IssueToken on \(name): \(answer)")
        }
        return IssuedToken(accessToken: access, refreshToken: json["refresh_token"] as? String, grantID: grant, jti: jti)
    }

    /// `(watermark, head)` from AdminService/Status (int64 is a JSON string in proto3 JSON).
    func revocationPosition() async throws -> (watermark: Int64, head: Int64) {
        let answer = try await admin("Status", [:])
        func int(_ key: String) -> Int64? {
            let value = answer.json[key]
            if let s = value as? String { return Int64(s) }
            return (value as? NSNumber)?.int64Value
        }
        guard answer.status == 200 else { throw TestSetupError("Status on \(name): \(answer)") }
        return (int("watermark") ?? 0, int("head") ?? 0)
    }

    /// RFC 7662 over the public listener, client_secret_basic.
    func introspect(_ token: String, as client: ClientCredentials, timeout: TimeInterval = 30) async throws -> HTTPAnswer {
        try await form("/oauth2/introspect", token: token, as: client, timeout: timeout)
    }

    /// RFC 7009 over the public listener, client_secret_basic.
    func revoke(_ token: String, as client: ClientCredentials, timeout: TimeInterval = 30) async throws -> HTTPAnswer {
        try await form("/oauth2/revoke", token: token, as: client, timeout: timeout)
    }

    private func form(_ path: String, token: String, as client: ClientCredentials, timeout: TimeInterval) async throws -> HTTPAnswer {
        let encoded = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? token
        return try await ClusterHTTP.send(
            publicURL + path,
            body: Data("token=\(encoded)".utf8),
            headers: ["Authorization": client.basic, "Content-Type": "application/x-www-form-urlencoded"],
            timeout: timeout
        )
    }

    /// `/readyz` status code.
    func readiness(timeout: TimeInterval = 10) async throws -> Int {
        try await readinessAnswer(timeout: timeout).status
    }

    func readinessAnswer(timeout: TimeInterval = 10) async throws -> HTTPAnswer {
        try await ClusterHTTP.send(publicURL + "/readyz", method: "GET", timeout: timeout)
    }

    /// The value of the Prometheus sample whose line contains every one of `parts`, or 0.
    func metric(_ name: String, _ parts: String...) async throws -> Double {
        let text = try await ClusterHTTP.send(adminURL + "/metrics", method: "GET").text
        for line in text.split(separator: "\n") where line.hasPrefix(name) && parts.allSatisfy({ line.contains($0) }) {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
        }
        return 0
    }
}

/// The suites that run clusters of `tokend serve` processes (and measure propagation), one after
/// the other: each loads both cores, and their latency bounds must not measure each other.
@Suite(.serialized) struct ClusterSuites {}

/// Several `tokend serve` replicas on one PostgreSQL database.
enum Cluster {
    static let adminToken = "cluster-test-admin-token"

    /// Creates a database on the shared test server, starts `count` replicas on it, runs `body`,
    /// then stops them and drops the database (also when `body` throws).
    static func run(
        replicas count: Int,
        environment: [String: String] = [:],
        _ body: (_ replicas: [Replica], _ database: String) async throws -> Void
    ) async throws {
        let (name, url) = try await createDatabase()
        let result: Result<Void, any Error>
        do {
            try await run(replicas: count, databaseURL: url, environment: environment) { try await body($0, name) }
            result = .success(())
        } catch {
            result = .failure(error)
        }
        try await dropDatabase(name)
        try result.get()
    }

    /// Starts `count` replicas on `databaseURL`, runs `body`, stops them. `perReplica[i]`, when
    /// given, adds to (or overrides) `environment` for replica `i`.
    static func run(
        replicas count: Int,
        databaseURL: String,
        environment: [String: String] = [:],
        perReplica: [[String: String]] = [],
        label: String = "",
        _ body: (_ replicas: [Replica]) async throws -> Void
    ) async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-cluster-\(UUID().uuidString)")
        var processes: [TokendProcess] = []
        var env = environment
        env["TOKEND_DATABASE_URL"] = databaseURL
        env["TOKEND_ADMIN_TOKEN"] = adminToken
        env["TOKEND_LOG_LEVEL"] = env["TOKEND_LOG_LEVEL"] ?? "notice"
        var replicas: [Replica] = []
        var failure: (any Error)?
        do {
            for index in 0..<count {
                let own = index < perReplica.count ? env.merging(perReplica[index]) { $1 } : env
                let directory = dataDir.appendingPathComponent("r\(index)")
                // Starting waits for the listeners by polling the log: off the cooperative pool.
                let process = try await offPool { Unchecked(try TokendProcess(dataDir: directory, environment: own)) }.value
                processes.append(process)
                replicas.append(
                    Replica(
                        name: label + String(UnicodeScalar(UInt8(ascii: "A") + UInt8(index))),
                        publicURL: process.publicURL,
                        adminURL: process.adminURL,
                        grpcURL: process.grpcURL,
                        pid: process.process.processIdentifier,
                        logURL: process.logURL
                    )
                )
            }
            for replica in replicas {
                try await eventually("\(replica) ready", within: .seconds(20)) { (try? await replica.readiness()) == 200 }
            }
            try await body(replicas)
        } catch {
            for replica in replicas { print("--- \(replica) log tail:\n\(replica.log.suffix(3000))") }
            failure = error
        }
        // All at once and off the cooperative pool: a replica may take its drain period to exit,
        // and a blocked pool thread (there are two on two cores) stalls every in-process server
        // of the suite meanwhile.
        let all = Unchecked(processes)
        let stuck = try await offPool { shutDown(all.value) }
        for index in stuck {
            Issue.record("replica \(index) did not exit within 30 s of SIGTERM and was killed: \(processes[index].log.suffix(1500))")
        }
        for process in processes { process.stop() }  // exited: this only checks its log for secrets
        if let failure {
            // Kept for a look at what the replicas did (the tails above are 3,000 characters).
            print("--- the replicas' full logs are kept under \(dataDir.path)")
            throw failure
        }
        try? FileManager.default.removeItem(at: dataDir)
    }
}

/// A value handed to and from a thread of its own (`offPool`); the caller owns it meanwhile.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs blocking `work` on a thread of its own, off the cooperative pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// SIGTERM to every process at once, then SIGKILL to those still running 30 s later (the default
/// `TOKEND_DRAIN_PERIOD`). Returns the indices of the processes that needed SIGKILL.
func shutDown(_ processes: [TokendProcess]) -> [Int] {
    for tokend in processes where tokend.process.isRunning { tokend.process.terminate() }
    let deadline = Date().addingTimeInterval(30)
    while processes.contains(where: { $0.process.isRunning }) && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.05)  // polling for the exits, with a deadline, on its own thread
    }
    var killed: [Int] = []
    for (index, tokend) in processes.enumerated() where tokend.process.isRunning {
        tokend.kill9()
        killed.append(index)
    }
    return killed
}

/// Polls `condition` every `interval` until it holds; throws if it does not within `within`.
func eventually(
    _ what: String,
    within: Duration,
    every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + within
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline { throw TestSetupError("\(what): not within \(within)") }
        try await Task.sleep(for: interval)
    }
}

/// `body(i)` for every i in `0..<count`, at most `width` at a time; results in index order.
func concurrentMap<T: Sendable>(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
    try await withThrowingTaskGroup(of: (Int, T).self) { group in
        var results = [T?](repeating: nil, count: count)
        var next = 0
        func addNext() {
            guard next < count else { return }
            let index = next
            next += 1
            group.addTask { (index, try await body(index)) }
        }
        for _ in 0..<min(width, count) { addNext() }
        while let (index, value) = try await group.next() {
            results[index] = value
            addNext()
        }
        return results.map { $0! }
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// Nearest-rank percentile of sorted values.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

func formatMS(_ value: Double) -> String { String(format: "%.1f ms", value) }

/// Introspects `token` on `replica` for `maxStaleness` + 1 s after its revocation at `revokedAt`:
/// an `active:true` to a request sent after `revokedAt + maxStaleness` is wrong, and so is any
/// status but 200 or 503; the last answer must be `active:false` (or 503).
func expectNeverActiveAfterStaleness(
    _ replica: Replica,
    _ token: String,
    _ client: ClientCredentials,
    revokedAt: ContinuousClock.Instant,
    maxStaleness: Double,
    what: String
) async throws {
    let bound = revokedAt + .milliseconds(Int64(maxStaleness * 1000))
    var wrong: [String] = []
    var last: HTTPAnswer?
    while ContinuousClock.now < bound + .seconds(1) {
        let sent = ContinuousClock.now
        let answer = try await replica.introspect(token, as: client)
        last = answer
        if answer.status != 200 && answer.status != 503 { wrong.append("\(answer)") }
        if sent > bound, answer.active == true { wrong.append("active:true \((sent - revokedAt).milliseconds / 1000) s after the revocation") }
    }
    #expect(wrong.isEmpty, "\(what): \(replica) answered wrongly: \(wrong.prefix(3))")
    #expect(last?.active == false || last?.status == 503, "\(what): \(replica) last answered \(last?.description ?? "nothing")")
}

/// Revokes `tokens` one at a time per lane through random replicas and measures, on every other
/// replica, the time from the acknowledgement until it answers `active:false` (polled every
/// millisecond; a miss when a request sent 2 s after the acknowledgement is still answered active).
/// Returns the latencies in ms by replica index, and the misses.
func revokeThroughRandomReplicas(
    _ replicas: [Replica],
    _ tokens: [String],
    _ client: ClientCredentials,
    lanes: Int = 2
) async throws -> (latencies: [[Double]], missed: [String]) {
    typealias Figures = (latencies: [[Double]], missed: [String])
    let empty: Figures = (Array(repeating: [], count: replicas.count), [])
    return try await withThrowingTaskGroup(of: Figures.self) { group in
        for lane in 0..<lanes {
            group.addTask {
                var figures = empty
                for i in stride(from: lane, to: tokens.count, by: lanes) {
                    let through = Int.random(in: 0..<replicas.count)
                    let answer = try await replicas[through].revoke(tokens[i], as: client)
                    let acknowledged = ContinuousClock.now
                    guard answer.status == 200 else {
                        figures.missed.append("revocation of token \(i) through \(replicas[through]): \(answer)")
                        continue
                    }
                    let others = replicas.indices.filter { $0 != through }
                    let seen = try await withThrowingTaskGroup(of: (Int, Duration?).self) { watchers in
                        for other in others {
                            watchers.addTask {
                                let latency = try await ClusterSuites.ClusterTests.timeUntilInactive(
                                    replicas[other], tokens[i], client, since: acknowledged, every: .milliseconds(1))
                                return (other, latency)
                            }
                        }
                        return try await watchers.reduce(into: [(Int, Duration?)]()) { $0.append($1) }
                    }
                    for (other, latency) in seen {
                        if let latency {
                            figures.latencies[other].append(latency.milliseconds)
                        } else {
                            figures.missed.append("token \(i) still active on \(replicas[other]) 2 s after \(replicas[through]) acknowledged")
                        }
                    }
                }
                return figures
            }
        }
        return try await group.reduce(into: empty) { total, part in
            for index in total.latencies.indices { total.latencies[index] += part.latencies[index] }
            total.missed += part.missed
        }
    }
}

/// `p50 …, p99 …, max … (count)` of sorted latencies in ms.
func latencySummary(_ sorted: [Double]) -> String {
    "p50 \(formatMS(percentile(sorted, 0.5))), p99 \(formatMS(percentile(sorted, 0.99))), max \(formatMS(sorted.last ?? .nan)) (\(sorted.count))"
}
