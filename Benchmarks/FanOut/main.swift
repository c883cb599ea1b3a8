// scripts/bench's fan-out row (issue 13): SUBSCRIBERS Watch streams on one hub, each on its own
// HTTP/2 connection (TokendClient's RevocationStream, the library resource servers use), while
// revocations are committed through the hub's AdminService/Revoke at fixed rates, step by step.
// For every step: delivery latency from the revocation's acknowledgement to its receipt by each
// subscriber (p50/p99/max over all deliveries), deliveries missing, the rate actually offered,
// and the hub's CPU per delivered event (its CPU meanwhile, less what the same revocations cost
// without subscribers, measured first). Prints one JSON line.
//
//   tokend-bench-fanout --upstream http://client:secret@127.0.0.1:9090 --admin http://127.0.0.1:8081
//       --admin-token TOKEN --tokens FILE --first K [--subscribers 200] [--rates 100,200,400]
//       [--seconds 5] --hub-pid PID
//
// A step "keeps up" when the offered rate reached 95 % of its target, every subscriber received
// every entry, and delivery p99 stayed under 1 s; the steps stop after the first that does not at
// or above --target (100/s, the figure), so the rates below it are always all measured.
import Foundation
import TokendClient
import TokendProto

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var upstream = ""
    var admin = ""
    var adminToken = ""
    var tokens = ""
    var first = 0
    var subscribers = 200
    var rates = [100, 200, 400, 800, 1600]
    var seconds = 5.0
    var hubPID: Int32 = 0
    var senders = 8
    /// The steps go on past failures below this rate (the target), and stop after the first at or above it.
    var target = 100

    init(_ arguments: [String]) {
        var i = 0
        func next() -> String {
            i += 1
            guard i < arguments.count else { fail("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--upstream": upstream = next()
            case "--admin": admin = next()
            case "--admin-token": adminToken = next()
            case "--tokens": tokens = next()
            case "--first": first = Int(next()) ?? 0
            case "--subscribers": subscribers = Int(next()) ?? subscribers
            case "--rates": rates = next().split(separator: ",").compactMap { Int($0) }
            case "--seconds": seconds = Double(next()) ?? seconds
            case "--hub-pid": hubPID = Int32(next()) ?? 0
            case "--senders": senders = Int(next()) ?? senders
            case "--target": target = Int(next()) ?? target
            default: fail("unknown argument \(arguments[i])")
            }
            i += 1
        }
        guard !upstream.isEmpty, !admin.isEmpty, !adminToken.isEmpty, !tokens.isEmpty, hubPID > 0, !rates.isEmpty else {
            fail("--upstream, --admin, --admin-token, --tokens, --hub-pid and --rates are required")
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("tokend-bench-fanout: \(message)\n".utf8))
    exit(1)
}

func log(_ message: String) {
    FileHandle.standardError.write(Data("[fanout] \(message)\n".utf8))
}

/// CLOCK_MONOTONIC in nanoseconds: the one clock senders (threads) and subscribers (tasks) share.
func nowNS() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// utime + stime of a process in seconds.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// One keep-alive HTTP/1.1 connection, blocking: AdminService/Revoke in Connect JSON.
final class AdminConnection {
    let fd: Int32
    let host: String
    let path = "/tokend.v1.AdminService/Revoke"
    let authorization: String
    var buffer = [UInt8]()

    init(url: String, token: String) {
        guard let u = URL(string: url), let host = u.host, let port = u.port else { fail("admin URL \(url)") }
        self.host = "\(host):\(port)"
        self.authorization = "Bearer \(token)"
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { fail("connect to \(url): errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Revokes `token`; returns its log position.
    func revoke(_ token: String) -> Int64 {
        let body = "{\"token\":\"\(token)\",\"reason\":\"bench\"}"
        let request =
            "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nAuthorization: \(authorization)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { fail("send: errno \(errno)") }
            sent += n
        }
        let (status, answer) = readResponse()
        guard status == 200, let range = answer.range(of: "\"seq\":\""), let end = answer[range.upperBound...].firstIndex(of: "\""),
            let seq = Int64(answer[range.upperBound..<end])
        else { fail("Revoke answered \(status): \(answer.prefix(200))") }
        return seq
    }

    private func fill() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { fail("the admin listener closed the connection (errno \(errno))") }
        buffer += chunk[..<n]
    }

    private func readResponse() -> (Int, String) {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where buffer[i..<(i + 4)].elementsEqual(separator) {
                    headerEnd = i
                    break
                }
            }
            if headerEnd == nil { fill() }
        }
        let head = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        guard let lengthLine = lines.first(where: { $0.lowercased().hasPrefix("content-length:") }),
            let length = Int(lengthLine.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
        else { fail("an answer without Content-Length: \(head)") }
        let total = headerEnd! + 4 + length
        while buffer.count < total { fill() }
        let body = String(decoding: buffer[(headerEnd! + 4)..<total], as: UTF8.self)
        buffer.removeFirst(total)
        return (status, body)
    }
}

/// Acknowledgements collected from the sender threads.
final class Acks: @unchecked Sendable {
    private let lock = NSLock()
    private var acks: [Int64: UInt64] = [:]
    private var finishedAt: UInt64 = 0

    func add(_ mine: [(Int64, UInt64)]) {
        lock.withLock {
            for (seq, at) in mine { acks[seq] = at }
            finishedAt = max(finishedAt, mine.last?.1 ?? 0)
        }
    }
    var result: (acks: [Int64: UInt64], finishedAt: UInt64) { lock.withLock { (acks, finishedAt) } }
}

/// Commits `tokens` revocations at `rate` per second from `senders` threads (request k at
/// start + k / rate); returns each log position with the moment it was acknowledged.
func revoke(_ tokens: ArraySlice<String>, rate: Double, options: Options) async -> (acks: [Int64: UInt64], seconds: Double) {
    let collected = Acks()
    let start = nowNS() + 20_000_000
    let all = Array(tokens)
    await withTaskGroup(of: Void.self) { group in
        for s in 0..<options.senders {
            group.addTask {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    Thread {
                        let connection = AdminConnection(url: options.admin, token: options.adminToken)
                        var mine: [(Int64, UInt64)] = []
                        var k = s
                        while k < all.count {
                            let due = start + UInt64(Double(k) / rate * 1e9)
                            let now = nowNS()
                            if due > now { usleep(useconds_t((due - now) / 1000)) }  // pacing on the schedule
                            let seq = connection.revoke(all[k])
                            mine.append((seq, nowNS()))
                            k += options.senders
                        }
                        close(connection.fd)
                        collected.add(mine)
                        done.resume()
                    }.start()
                }
            }
        }
    }
    let (acks, finishedAt) = collected.result
    return (acks, Double(max(finishedAt, start) - start) / 1e9)
}

/// When one subscriber received each log position.
final class Receipts: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [Int64: UInt64] = [:]
    private(set) var highest: Int64 = 0

    func record(_ seq: Int64) {
        let at = nowNS()
        lock.withLock {
            seen[seq] = at
            highest = max(highest, seq)
        }
    }
    var top: Int64 { lock.withLock { highest } }
    func take() -> [Int64: UInt64] { lock.withLock { defer { seen = [:] }; return seen } }
}

final class Connected: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return -1 }  // no data (JSON has no NaN)
    return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
}

func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

let options = Options(Array(CommandLine.arguments.dropFirst()))
let upstream: UpstreamURL
do { upstream = try UpstreamURL(options.upstream) } catch { fail("--upstream \(error)") }
let tokens = (try? String(contentsOfFile: options.tokens, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
var cursor = options.first
@MainActor func take(_ n: Int) -> ArraySlice<String> {
    guard cursor + n <= tokens.count else { fail("not enough tokens: \(cursor + n) needed, \(tokens.count) in \(options.tokens)") }
    defer { cursor += n }
    return tokens[cursor..<(cursor + n)]
}

// The same revocations without subscribers: the hub's CPU per revocation alone.
let baseRate = Double(options.target)
let baseCount = Int(baseRate * options.seconds)
let cpuBefore = cpuSeconds(options.hubPID)
let baseline = await revoke(take(baseCount), rate: baseRate, options: options)
let cpuPerRevocation = (cpuSeconds(options.hubPID) - cpuBefore) / Double(baseline.acks.count)
log("baseline: \(baseline.acks.count) revocations at \(Int(baseRate))/s without subscribers, hub CPU \(Int(cpuPerRevocation * 1e6)) µs each")

let after = baseline.acks.keys.max() ?? 0
let receipts = (0..<options.subscribers).map { _ in Receipts() }
let connected = Connected()
var steps: [[String: Any]] = []
var keptUp: [Int] = []
var metTarget: [Int] = []
await withTaskGroup(of: Void.self) { group in
    for r in receipts {
        group.addTask {
            try? await RevocationStream(upstream: upstream).follow(after: after, connected: { connected.add() }) { event in
                r.record(event.seq)
            }
        }
    }
    let deadline = nowNS() + 60_000_000_000
    while connected.value < options.subscribers {
        if nowNS() > deadline { fail("only \(connected.value) of \(options.subscribers) subscribers connected within 60 s") }
        try? await Task.sleep(for: .milliseconds(10))  // polling the connected count
    }
    log("\(options.subscribers) subscribers connected")
    for rate in options.rates {
        let count = Int(Double(rate) * options.seconds)
        let cpu0 = cpuSeconds(options.hubPID)
        let own0 = cpuSeconds(getpid())
        let (acks, seconds) = await revoke(take(count), rate: Double(rate), options: options)
        let last = acks.keys.max() ?? 0
        let waitUntil = nowNS() + 5_000_000_000
        while receipts.contains(where: { $0.top < last }) && nowNS() < waitUntil {
            try? await Task.sleep(for: .milliseconds(5))  // polling the subscribers' progress
        }
        let cpu = cpuSeconds(options.hubPID) - cpu0
        let own = cpuSeconds(getpid()) - own0
        var latencies: [Double] = []
        latencies.reserveCapacity(acks.count * receipts.count)
        var missing = 0
        for r in receipts {
            let seen = r.take()
            for (seq, ack) in acks {
                if let got = seen[seq] { latencies.append(got > ack ? Double(got - ack) / 1e6 : 0) } else { missing += 1 }
            }
        }
        latencies.sort()
        let achieved = Double(acks.count) / max(seconds, 1e-9)
        let deliveries = latencies.count
        let perDelivery = max(0, cpu - cpuPerRevocation * Double(acks.count)) / Double(max(deliveries, 1))
        let p99 = percentile(latencies, 0.99)
        let step: [String: Any] = [
            "rate": rate, "revocations": acks.count, "achieved_rate": rounded(achieved), "deliveries": deliveries, "missing": missing,
            "p50_ms": rounded(percentile(latencies, 0.5)), "p99_ms": rounded(p99), "max_ms": rounded(latencies.last ?? -1),
            "hub_cpu_s": rounded(cpu), "hub_cpu_us_per_delivery": rounded(perDelivery * 1e6),
            "subscribers_cpu_us_per_delivery": rounded(own / Double(max(deliveries, 1)) * 1e6),
        ]
        steps.append(step)
        log("step \(rate)/s: \(step)")
        let ok = achieved >= 0.95 * Double(rate) && missing == 0 && p99 < 1000
        if ok { keptUp.append(rate) }
        if ok && p99 < 50 { metTarget.append(rate) }
        if !ok && rate >= options.target { break }
    }
    group.cancelAll()
}
let result: [String: Any] = [
    "subscribers": options.subscribers, "seconds_per_step": options.seconds, "senders": options.senders,
    "hub_cpu_us_per_revocation_alone": rounded(cpuPerRevocation * 1e6), "steps": steps,
    "max_rate_kept_up": keptUp.max() ?? 0, "max_rate_p99_under_50ms": metTarget.max() ?? 0,
]
let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
exit(0)
