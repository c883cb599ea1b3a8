import Foundation
import Testing
import TokendClient
import TokendProto
import TokendTestSupport

extension ClusterSuites {
    /// Issue 13's fan-out simulation: 200 Watch subscribers (light in-process clients, TokendClient's
    /// `RevocationStream`, each on its own HTTP/2 connection) on one hub, revocations at 100/s.
    /// Reports delivery latency to all 200 and the hub's CPU per delivered event.
    @Suite(.serialized) struct FanOutTests {
        static let subscribers = 200
        static let rate = 100.0
        static let revocations = 400

        /// A measurement more than a check, and 80,000 deliveries in a debug test process starve the
        /// suites running beside it: run with `TOKEND_TEST_FANOUT=1` (docs/SCALING.md has its figures).
        @Test(.enabled(if: ProcessInfo.processInfo.environment["TOKEND_TEST_FANOUT"] == "1"))
        func oneHubDeliversEveryRevocationToTwoHundredSubscribers() async throws {
            // A generous staleness bound: this is about delivery, and a debug hub starved of CPU by a
            // parallel suite must not end its streams as stale (UpstreamTests covers staleness).
            try await Cluster.run(replicas: 1, environment: ["TOKEND_MAX_STALENESS": "30s"]) { replicas, _ in
                let hub = replicas[0]
                _ = try await hub.createClient("rs", roles: ["introspect", "revoke"])
                let watcher = try await hub.createClient("watcher", roles: ["introspect"])
                let upstream = try UpstreamURL(hub.upstreamURL(as: watcher))
                let tokens = try await concurrentMap(Self.revocations + Self.revocations / 2, width: 16) { i in
                    try await hub.issue(client: "rs", subject: "fan-\(i)").accessToken
                }
                let (baseline, baselineSeconds) = try await Self.revoke(Array(tokens[Self.revocations...]), on: hub)
                let after = try await hub.revocationPosition().head

                let measured = tokens[..<Self.revocations]
                let ready = Counter()
                let (receipts, acknowledged, cpuSeconds) = try await withThrowingTaskGroup(of: [Int64: ContinuousClock.Instant].self) { group in
                    for _ in 0..<Self.subscribers {
                        group.addTask {
                            let seen = Receipts(until: after + Int64(measured.count))
                            do {
                                try await RevocationStream(upstream: upstream).follow(after: after, connected: { ready.add() }) { event in
                                    if seen.record(event.seq) { throw Done() }
                                }
                            } catch is Done {}
                            return seen.instants
                        }
                    }
                    try await eventually("\(Self.subscribers) subscribers connected", within: .seconds(30)) { ready.value == Self.subscribers }
                    let (acknowledged, cpuSeconds) = try await Self.revoke(Array(measured), on: hub)
                    var receipts: [[Int64: ContinuousClock.Instant]] = []
                    for try await instants in group { receipts.append(instants) }
                    return (receipts, acknowledged, cpuSeconds)
                }
                var latencies: [Double] = []
                var missing = 0
                for instants in receipts {
                    for (seq, sent) in acknowledged {
                        if let got = instants[seq] { latencies.append(max(0, (got - sent).milliseconds)) } else { missing += 1 }
                    }
                }
                latencies.sort()
                let delivered = Double(latencies.count)
                let perRevocationAlone = baselineSeconds / Double(baseline.count)
                let perDelivery = max(0, cpuSeconds - perRevocationAlone * Double(acknowledged.count)) / max(delivered, 1)
                print(
                    "fan-out: \(Self.subscribers) subscribers, \(acknowledged.count) revocations at \(Int(Self.rate))/s: delivery "
                        + "\(latencySummary(latencies)), \(missing) missing; hub CPU \(String(format: "%.2f", cpuSeconds)) s "
                        + "(\(String(format: "%.0f", perRevocationAlone * 1e6)) µs per revocation without subscribers; "
                        + "\(String(format: "%.1f", perDelivery * 1e6)) µs per delivered event)"
                )
                #expect(missing == 0, "\(missing) of \(acknowledged.count * Self.subscribers) deliveries missing")
                // The target (p99 < 50 ms) is for a release build on a quiet machine; a debug build beside
                // the rest of the suite gets a ceiling only a stalled or unfair delivery breaks.
                #expect(percentile(latencies, 0.99) < 1000, "delivery \(latencySummary(latencies))")
            }
        }

        /// Revokes `tokens` through AdminService/Revoke at `rate` per second (paced on an absolute
        /// schedule); returns each log position with the moment it was acknowledged, and the hub's
        /// CPU seconds meanwhile.
        static func revoke(_ tokens: [String], on hub: Replica) async throws -> (acknowledged: [Int64: ContinuousClock.Instant], cpuSeconds: Double) {
            let before = try cpuSeconds(of: hub.pid)
            let start = ContinuousClock.now
            var acknowledged: [Int64: ContinuousClock.Instant] = [:]
            for (i, token) in tokens.enumerated() {
                try await Task.sleep(until: start + .milliseconds(Int64(Double(i) * 1000 / rate)))  // pacing, not waiting for a condition
                let answer = try await hub.admin("Revoke", ["token": token])
                let at = ContinuousClock.now
                let seq = (answer.json["seq"] as? String).flatMap { Int64($0) } ?? (answer.json["seq"] as? NSNumber)?.int64Value
                guard answer.status == 200, let seq else { throw TestSetupError("Revoke: \(answer)") }
                acknowledged[seq] = at
            }
            return (acknowledged, try cpuSeconds(of: hub.pid) - before)
        }

        /// utime + stime of a process, from /proc/PID/stat (clock ticks of 1/100 s).
        static func cpuSeconds(of pid: Int32) throws -> Double {
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            guard let close = stat.lastIndex(of: ")") else { throw TestSetupError("unreadable /proc/\(pid)/stat") }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
                throw TestSetupError("unreadable /proc/\(pid)/stat")
            }
            return (user + system) / 100
        }
    }
}

private struct Done: Error {}

/// When one subscriber received each log position; done once it has `until`.
private final class Receipts: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [Int64: ContinuousClock.Instant] = [:]
    let until: Int64

    init(until: Int64) { self.until = until }

    /// Records `seq`; returns whether the last position has arrived.
    func record(_ seq: Int64) -> Bool {
        let now = ContinuousClock.now
        return lock.withLock {
            seen[seq] = now
            return seq >= until
        }
    }

    var instants: [Int64: ContinuousClock.Instant] { lock.withLock { seen } }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
