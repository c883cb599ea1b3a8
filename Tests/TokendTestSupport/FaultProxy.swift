import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy between tokend and PostgreSQL that injects faults (issue 15, item 4): added latency,
/// connections reset as soon as they carry a query, a blackhole (connections stay open, nothing
/// moves either way, nothing is reset: a node gone behind a partition), and a throttle. `heal()`
/// lets everything through again; bytes held by a blackhole are then delivered, as TCP would
/// retransmit them.
///
/// Plain sockets on threads of its own (two per connection), not SwiftNIO: a proxy that must stop
/// reading on command is a blocking loop that stops calling `recv`, and it stays off the test
/// process's cooperative pool.
public final class FaultProxy: Sendable {
    public enum Fault: Sendable, Equatable, CustomStringConvertible {
        case none
        /// Every chunk of bytes, either way, waits this long before it is passed on.
        case latency(Duration)
        /// A connection is reset (RST) as soon as either side sends a byte; new ones at once.
        case reset
        /// Nothing is read or written, and nothing is closed.
        case blackhole
        /// At most this many bytes per second each way, per connection.
        case throttle(bytesPerSecond: Int)

        public var description: String {
            switch self {
            case .none: "none"
            case .latency(let d): "latency \(d)"
            case .reset: "reset"
            case .blackhole: "blackhole"
            case .throttle(let b): "throttle \(b) B/s"
            }
        }
    }

    public let port: Int
    private let listener: Int32
    private let target: sockaddr_in
    private let state = Mutex<(fault: Fault, closed: Bool, sockets: Set<Int32>, accepted: Int)>((.none, false, [], 0))

    /// Listens on 127.0.0.1 (a port of the kernel's choosing) and forwards to `host:targetPort`.
    public init(to host: String = "127.0.0.1", port targetPort: Int) throws {
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = in_port_t(UInt16(targetPort).bigEndian)
        guard inet_pton(AF_INET, host, &target.sin_addr) == 1 else { throw TestSetupError("FaultProxy: not an IPv4 address: \(host)") }
        self.target = target
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 128) == 0 else { throw TestSetupError("FaultProxy: bind/listen: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    public var fault: Fault { state.withLock { $0.fault } }

    /// Connections accepted so far.
    public var accepted: Int { state.withLock { $0.accepted } }

    public func inject(_ fault: Fault) { state.withLock { $0.fault = fault } }

    public func heal() { inject(.none) }

    /// Stops accepting and closes every connection.
    public func close() {
        let sockets = state.withLock { state -> Set<Int32> in
            state.closed = true
            return state.sockets
        }
        for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit { _ = Glibc.close(listener) }

    private var closed: Bool { state.withLock { $0.closed } }

    private func acceptLoop() {
        while !closed {
            guard wait(listener, readable: true, milliseconds: 50) else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            state.withLock { $0.accepted += 1 }
            if fault == .reset {
                abort(client)
                continue
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var target = self.target
            let connected = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                abort(client)
                _ = Glibc.close(server)
                continue
            }
            var one: Int32 = 1
            for fd in [client, server] { setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) }
            state.withLock { $0.sockets.formUnion([client, server]) }
            let pair = Pair()
            Thread { [self] in pump(from: client, to: server, pair) }.start()
            Thread { [self] in pump(from: server, to: client, pair) }.start()
        }
    }

    /// The two directions of one connection. The first to finish wakes the other (no descriptor
    /// is closed while a thread may still use it); the second closes both, with a reset when
    /// either asked for one.
    private final class Pair: Sendable {
        private let state = Mutex((finished: 0, reset: false))
        var done: Bool { state.withLock { $0.finished > 0 } }
        /// Records one direction's end; returns whether it is the last, and whether to reset.
        func finish(reset: Bool) -> (last: Bool, reset: Bool) {
            state.withLock {
                $0.finished += 1
                $0.reset = $0.reset || reset
                return ($0.finished == 2, $0.reset)
            }
        }
    }

    private func pump(from source: Int32, to destination: Int32, _ pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var reset = false
        loop: while !closed && !pair.done {
            let current = fault
            if current == .blackhole {
                Thread.sleep(forTimeInterval: 0.005)  // holding still until healed: nothing to wait for but the test's command
                continue
            }
            guard wait(source, readable: true, milliseconds: 20) else { continue }
            if fault == .blackhole { continue }  // injected while waiting: this byte stays unread
            let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            switch fault {
            case .reset:
                reset = true
                break loop
            case .latency(let delay):
                Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            case .throttle(let rate):
                Thread.sleep(forTimeInterval: Double(n) / Double(max(1, rate)))
            case .none, .blackhole:
                break
            }
            var sent = 0
            while sent < n {
                let m = buffer[sent..<n].withUnsafeBytes { send(destination, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if m <= 0 { break loop }
                sent += m
            }
        }
        let (last, resetBoth) = pair.finish(reset: reset)
        guard last else {
            // Wake the other direction (its recv returns 0) without sending anything yet.
            shutdown(source, Int32(SHUT_RD))
            shutdown(destination, Int32(SHUT_RD))
            return
        }
        state.withLock { $0.sockets.subtract([source, destination]) }
        if resetBoth {
            abort(source)
            abort(destination)
        } else {
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(destination, Int32(SHUT_RDWR))
            _ = Glibc.close(source)
            _ = Glibc.close(destination)
        }
    }

    /// Closes `fd` with a reset (SO_LINGER 0), as a peer that vanished mid-conversation.
    private func abort(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = Glibc.close(fd)
    }

    private func wait(_ fd: Int32, readable: Bool, milliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, milliseconds) > 0
    }
}
