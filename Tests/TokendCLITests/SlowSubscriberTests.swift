import Foundation
import Testing
import TokendClient
import TokendProto
import TokendTestSupport

#if canImport(Glibc)
import Glibc
#endif

extension ClusterSuites {
    /// Issue 13's fault "hold a follower's socket without reading": a Watch subscriber on a real
    /// socket that sends its request and then never reads again. Replica A (`TOKEND_WATCH_BUFFER`
    /// 1,000) cuts it off once it is 1,000 entries behind, while a well-behaved follower beside it
    /// receives every entry; replica B (`TOKEND_GRPC_KEEPALIVE` 1s) closes the silent connection
    /// itself, since its keepalive ping is never answered.
    @Suite(.serialized) struct SlowSubscriberTests {
        static let buffer = 1000

        @Test func aSubscriberThatStopsReadingIsCutOffAndDisconnected() async throws {
            let perReplica = [
                ["TOKEND_WATCH_BUFFER": "\(Self.buffer)", "TOKEND_GRPC_KEEPALIVE": "10m"],
                ["TOKEND_GRPC_KEEPALIVE": "1s"],
            ]
            let (database, url) = try await createDatabase()
            let result: Result<Void, any Error>
            do {
                try await Cluster.run(replicas: 2, databaseURL: url, environment: ["TOKEND_MAX_STALENESS": "30s"], perReplica: perReplica) {
                    replicas in
                    let watcher = try await replicas[0].createClient("watcher", roles: ["introspect"])
                    try await Self.cutOff(replicas[0], watcher)
                    try await Self.disconnected(replicas[1], watcher)
                    try await Self.connectCallerGone(replicas[1], watcher)
                }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            try await dropDatabase(database)
            try result.get()
        }

        /// Revocations through A, 50 at a time, until A reports the silent subscriber cut off: that
        /// happens within the buffer (plus what one batch and the HTTP/2 stream hold), A's memory
        /// does not follow the silent subscriber's backlog, and the follower missed nothing.
        static func cutOff(_ hub: Replica, _ watcher: ClientCredentials) async throws {
            let start = try await hub.revocationPosition().head
            let follower = Seen()
            let upstream = try UpstreamURL(hub.upstreamURL(as: watcher))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await RevocationStream(upstream: upstream).follow(after: start, connected: { follower.connect() }) { event in
                        follower.record(event.seq)
                    }
                }
                defer { group.cancelAll() }
                try await eventually("the follower is connected", within: .seconds(20)) { follower.connects == 1 }
                let silent = try await offPool { try SilentWatch(grpcURL: hub.grpcURL, credentials: watcher, after: start) }
                defer { silent.close() }
                try await eventually("A serves both subscribers", within: .seconds(20)) { try await hub.metric("tokend_watch_subscribers") == 2 }
                let rssBefore = try residentMiB(hub.pid)

                var revoked = 0
                while try await hub.metric("tokend_watch_cut_off_total") == 0 {
                    guard revoked < 10 * Self.buffer else {
                        Issue.record("A never cut off the subscriber that stopped reading (\(revoked) revocations)")
                        return
                    }
                    let base = revoked
                    _ = try await concurrentMap(50, width: 8) { i in
                        let answer = try await hub.admin("Revoke", ["subject": "slow-\(base + i)", "reason": "test"])
                        guard answer.status == 200 else { throw TestSetupError("Revoke: \(answer)") }
                    }
                    revoked += 50
                }
                let rssAfter = try residentMiB(hub.pid)
                print(
                    "slow subscriber: cut off by A after \(revoked) revocations (TOKEND_WATCH_BUFFER \(Self.buffer)); "
                        + "A's VmRSS \(rssBefore) → \(rssAfter) MiB"
                )
                // Cut off at the buffer, plus what one batch and the gRPC and HTTP/2 layers hold
                // (about 200 entries here), not after the backlog has grown further.
                #expect(revoked <= 2 * Self.buffer, "cut off only after \(revoked) revocations")
                try await eventually("A serves only the follower", within: .seconds(10)) { try await hub.metric("tokend_watch_subscribers") == 1 }

                let head = try await hub.revocationPosition().head
                try await eventually("the follower has every entry", within: .seconds(20)) { follower.highest >= head }
                #expect(follower.count == Int(head - start), "the follower saw \(follower.count) of \(head - start) entries")
                #expect(follower.connects == 1, "the follower was cut off too")
            }
        }

        /// B pings the silent connection after 1 s without a frame from it, and closes it 1 s later.
        static func disconnected(_ hub: Replica, _ watcher: ClientCredentials) async throws {
            let after = try await hub.revocationPosition().head
            let silent = try await offPool { try SilentWatch(grpcURL: hub.grpcURL, credentials: watcher, after: after) }
            defer { silent.close() }
            let opened = ContinuousClock.now
            // Reads (never answering a ping) until the peer closes; at most 30 s.
            let closed = try await offPool { silent.readUntilClosed(within: 30) }
            #expect(closed, "B did not close a connection that never answered its keepalive ping")
            print("slow subscriber: B (TOKEND_GRPC_KEEPALIVE 1s) closed the silent connection after \(formatMS((ContinuousClock.now - opened).milliseconds))")
            try await eventually("B serves no subscriber", within: .seconds(10)) { try await hub.metric("tokend_watch_subscribers") == 0 }
        }

        /// A Connect Watch (HTTP/1.1 on the public listener) whose caller closes its connection:
        /// B drops the subscription at once, with no entry committed that could fail to write.
        static func connectCallerGone(_ hub: Replica, _ watcher: ClientCredentials) async throws {
            let head = try await hub.revocationPosition().head
            let watch = try await offPool { try SilentWatch(connectURL: hub.publicURL, credentials: watcher, after: head) }
            try await eventually("B serves the Connect subscriber", within: .seconds(20)) { try await hub.metric("tokend_watch_subscribers") == 1 }
            watch.close()
            try await eventually("B dropped the Connect subscriber", within: .seconds(10)) { try await hub.metric("tokend_watch_subscribers") == 0 }
            #expect(try await hub.revocationPosition().head == head, "an entry was committed meanwhile: the test proves nothing")
        }
    }
}

/// A gRPC Watch call on a raw HTTP/2 connection that sends its request with a flow-control window
/// of 0 (the server may send no message on the stream) and then reads nothing, answering no ping.
private final class SilentWatch: @unchecked Sendable {
    private let fd: Int32

    /// A TCP connection to `urlString`'s host and port.
    private static func connected(to urlString: String) throws -> (fd: Int32, host: String, port: Int) {
        guard let url = URL(string: urlString), let host = url.host, let port = url.port else { throw TestSetupError("URL \(urlString)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw TestSetupError("not an IPv4 address: \(host)") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSetupError("connect to \(urlString): errno \(errno)") }
        return (fd, host, port)
    }

    /// A Connect server-streaming Watch over HTTP/1.1: the request, then the response's head read.
    init(connectURL: String, credentials: ClientCredentials, after: Int64) throws {
        let (fd, host, port) = try Self.connected(to: connectURL)
        self.fd = fd
        let json = Array("{\"afterSeq\":\"\(after)\"}".utf8)
        let length = UInt32(json.count)
        let body: [UInt8] = [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + json
        let head =
            "POST /tokend.v1.RevocationService/Watch HTTP/1.1\r\nHost: \(host):\(port)\r\n"
            + "Content-Type: application/connect+json\r\nAuthorization: \(credentials.basic)\r\nContent-Length: \(body.count)\r\n\r\n"
        let bytes = Array(head.utf8) + body
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw TestSetupError("send: \(sent), errno \(errno)") }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !received.isEmpty ? !String(decoding: received, as: UTF8.self).contains("\r\n\r\n") : true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw TestSetupError("no response head from \(connectURL): \(String(decoding: received, as: UTF8.self))") }
            received += buffer[0..<n]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200") else { throw TestSetupError("Connect Watch answered \(text.prefix(200))") }
    }

    init(grpcURL: String, credentials: ClientCredentials, after: Int64) throws {
        let (fd, host, port) = try Self.connected(to: grpcURL)
        self.fd = fd

        // tokend.v1.WatchRequest{after_seq = 1: int64}, protobuf: field 1 as a varint.
        var message: [UInt8] = []
        if after != 0 {
            message.append(0x08)
            var value = UInt64(bitPattern: after)
            while value >= 0x80 {
                message.append(UInt8(value & 0x7F) | 0x80)
                value >>= 7
            }
            message.append(UInt8(value))
        }
        var bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 0.
        bytes += Self.frame(type: 0x4, flags: 0, stream: 0, [0, 2, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0])
        var block: [UInt8] = []
        for (name, value) in [
            (":method", "POST"), (":scheme", "http"), (":path", "/tokend.v1.RevocationService/Watch"),
            (":authority", "\(host):\(port)"), ("content-type", "application/grpc"), ("te", "trailers"),
            ("authorization", credentials.basic),
        ] {
            block += [0x00] + Self.string(name) + Self.string(value)  // literal without indexing, new name
        }
        bytes += Self.frame(type: 0x1, flags: 0x4, stream: 1, block)  // HEADERS, END_HEADERS
        let length = UInt32(message.count)
        let prefix: [UInt8] = [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        bytes += Self.frame(type: 0x0, flags: 0x1, stream: 1, prefix + message)  // DATA, END_STREAM
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw TestSetupError("send: \(sent), errno \(errno)") }
    }

    /// Reads and discards until the peer closes the connection (`true`) or `seconds` pass.
    func readUntilClosed(within seconds: Int) -> Bool {
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return true }  // reset
        }
        return false
    }

    func close() { _ = Glibc.close(fd) }

    private static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// An HPACK string literal (no Huffman coding): its length as a 7-bit prefix integer, then its bytes.
    private static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        var length = bytes.count
        guard length >= 127 else { return [UInt8(length)] + bytes }
        var out: [UInt8] = [127]
        length -= 127
        while length >= 128 {
            out.append(UInt8(length & 0x7F | 0x80))
            length >>= 7
        }
        return out + [UInt8(length)] + bytes
    }
}

/// The entries one follower received.
private final class Seen: @unchecked Sendable {
    private let lock = NSLock()
    private var seqs = Set<Int64>()
    private var connectCount = 0

    func record(_ seq: Int64) { lock.withLock { _ = seqs.insert(seq) } }
    func connect() { lock.withLock { connectCount += 1 } }
    var count: Int { lock.withLock { seqs.count } }
    var highest: Int64 { lock.withLock { seqs.max() ?? 0 } }
    var connects: Int { lock.withLock { connectCount } }
}

/// VmRSS of a process in MiB.
private func residentMiB(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { throw TestSetupError("no VmRSS for \(pid)") }
    return kib / 1024
}
