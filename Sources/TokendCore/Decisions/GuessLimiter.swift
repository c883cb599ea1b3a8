import Foundation
import Synchronization

/// Slows guessing, per replica (SPEC "Clients and roles"; RFC 7662 §4, RFC 6749 §10.10).
///
/// - Failed client authentications are counted per source address and per (source address,
///   presented `client_id`). Past `authFailuresPerMinute` in a sliding minute, that address gets
///   `tooManyRequests` for every request presenting that `client_id` (before any secret is checked,
///   so guessing learns nothing) and for every request that fails authentication. A client that
///   authenticates correctly from an address without failures is never slowed.
/// - Well-formed but never-issued tokens are counted per authenticated caller; past
///   `unknownTokensPerMinute` the caller gets `tooManyRequests` until its sliding minute falls back
///   under the limit. Expired and revoked tokens never count.
///
/// Memory is bounded: each table keeps at most `capacity` counters (keys are 64-bit hashes with a
/// per-process random seed, so an attacker cannot aim collisions), forgetting the least recently
/// touched half when full. A flood of distinct addresses therefore costs a bounded amount of memory;
/// what it can do is make the replica forget an idle address's count, never slow a good client.
public final class GuessLimiter: Sendable {
    public struct Limits: Sendable, Equatable {
        public var authFailuresPerMinute: Int
        public var unknownTokensPerMinute: Int

        public init(authFailuresPerMinute: Int = 60, unknownTokensPerMinute: Int = 1000) {
            self.authFailuresPerMinute = authFailuresPerMinute
            self.unknownTokensPerMinute = unknownTokensPerMinute
        }
    }

    public enum Kind: String, Sendable, CaseIterable {
        /// A failed client authentication.
        case authentication
        /// A well-formed token that was never issued.
        case unknownToken = "unknown_token"
    }

    public let limits: Limits
    /// Counters kept per table at most.
    public let capacity: Int
    private let now: Now
    private let metrics: (any DecisionMetrics)?
    private let state: Mutex<Tables>

    private struct Tables {
        var byAddress: SlidingCounters
        var byAddressAndClient: SlidingCounters
        var unknownByCaller: SlidingCounters
    }

    public init(limits: Limits = Limits(), capacity: Int = 65_536, now: @escaping Now = { Date() }, metrics: (any DecisionMetrics)? = nil) {
        self.limits = limits
        self.capacity = capacity
        self.now = now
        self.metrics = metrics
        self.state = Mutex(
            Tables(
                byAddress: SlidingCounters(capacity: capacity),
                byAddressAndClient: SlidingCounters(capacity: capacity),
                unknownByCaller: SlidingCounters(capacity: capacity)
            )
        )
    }

    // MARK: Client authentication

    /// Before the secret of `clientID` presented from `address` is checked: refused when that
    /// address is past the limit for that `client_id`.
    public func checkPresented(clientID: String, from address: String?) throws {
        if let wait = presentedRetryAfter(clientID: clientID, from: address) { throw refusal(.authentication, retryAfter: wait) }
    }

    /// Whether `checkPresented` would refuse, without counting a refusal: for the fast paths, which
    /// hand a refused request on to the router, where it is refused (and counted) once.
    public func refusesPresented(clientID: String, from address: String?) -> Bool {
        presentedRetryAfter(clientID: clientID, from: address) != nil
    }

    private func presentedRetryAfter(clientID: String, from address: String?) -> Int? {
        guard let address else { return nil }
        let key = Self.key(address, clientID)
        let time = seconds()
        return state.withLock { $0.byAddressAndClient.retryAfter(key, limit: limits.authFailuresPerMinute, at: time) }
    }

    /// After a failed authentication from `address` (`clientID` as presented, if any): counts it and
    /// returns what to answer: `failure`, or `tooManyRequests` once the address is past the limit.
    public func failedAuthentication(clientID: String?, from address: String?, failure: TokendError) -> TokendError {
        guard let address else { return failure }
        metrics?.guessCounted(.authentication)
        let time = seconds()
        let addressKey = Self.key(address)
        let wait = state.withLock { tables in
            if let clientID { tables.byAddressAndClient.add(Self.key(address, clientID), at: time) }
            tables.byAddress.add(addressKey, at: time)
            return tables.byAddress.retryAfter(addressKey, limit: limits.authFailuresPerMinute, at: time)
        }
        if let wait { return refusal(.authentication, retryAfter: wait) }
        return failure
    }

    // MARK: Token scanning

    /// Before an authenticated caller's introspection: refused while it is past the limit.
    public func checkUnknownTokens(caller: String) throws {
        if let wait = unknownTokensRetryAfter(caller: caller) { throw refusal(.unknownToken, retryAfter: wait) }
    }

    /// Whether `checkUnknownTokens` would refuse, without counting a refusal (see `refusesPresented`).
    public func refusesUnknownTokens(caller: String) -> Bool {
        unknownTokensRetryAfter(caller: caller) != nil
    }

    private func unknownTokensRetryAfter(caller: String) -> Int? {
        let time = seconds()
        let key = Self.key(caller)
        return state.withLock { $0.unknownByCaller.retryAfter(key, limit: limits.unknownTokensPerMinute, at: time) }
    }

    /// The caller asked about a well-formed token that was never issued.
    public func askedNeverIssuedToken(caller: String) {
        metrics?.guessCounted(.unknownToken)
        let time = seconds()
        let key = Self.key(caller)
        state.withLock { $0.unknownByCaller.add(key, at: time) }
    }

    /// Counters held now, per table (for tests and `/metrics`).
    public var trackedCounters: (addresses: Int, addressesAndClients: Int, callers: Int) {
        state.withLock { ($0.byAddress.count, $0.byAddressAndClient.count, $0.unknownByCaller.count) }
    }

    private func refusal(_ kind: Kind, retryAfter: Int) -> TokendError {
        metrics?.guessRefused(kind)
        let what = kind == .authentication ? "too many failed client authentications" : "too many never-issued tokens"
        return .tooManyRequests("\(what) in the last minute; retry later", retryAfter: retryAfter)
    }

    private func seconds() -> Double { now().timeIntervalSince1970 }

    private static let seed = UInt64.random(in: 0...UInt64.max)

    private static func key(_ parts: String...) -> UInt64 {
        var hasher = Hasher()
        hasher.combine(seed)
        for part in parts {
            hasher.combine(part)
            hasher.combine(0 as UInt8)
        }
        return UInt64(bitPattern: Int64(hasher.finalize()))
    }
}

/// Sliding-minute counters (the previous minute's count, weighted by how much of it is still inside
/// the window, plus the current minute's) for at most `capacity` keys: two generations, the older
/// one dropped when the younger fills half the capacity, so a key in use survives and memory stays
/// bounded whatever the number of keys.
struct SlidingCounters {
    struct Window {
        var minute: Int64
        var current: UInt32
        var previous: UInt32
    }

    let capacity: Int
    private var young: [UInt64: Window] = [:]
    private var old: [UInt64: Window] = [:]

    init(capacity: Int) { self.capacity = max(2, capacity) }

    var count: Int { young.count + old.count }

    /// Counts one event for `key` at `time` (seconds).
    mutating func add(_ key: UInt64, at time: Double) {
        var window = Self.rolled(lookup(key), to: Self.minute(time))
        window.current &+= 1
        store(key, window)
    }

    /// Seconds until `key`'s sliding count is back at or under `limit`, or `nil` when it is already.
    func retryAfter(_ key: UInt64, limit: Int, at time: Double) -> Int? {
        guard let stored = lookup(key) else { return nil }
        let minute = Self.minute(time)
        let window = Self.rolled(stored, to: minute)
        let elapsed = time - Double(minute) * 60
        let (current, previous, limit) = (Double(window.current), Double(window.previous), Double(limit))
        guard previous * (1 - elapsed / 60) + current > limit else { return nil }
        // Within this minute the previous minute's weight falls; from the next one, this one's does.
        var wait: Double
        if current <= limit, previous > 0 {
            wait = 60 * (1 - (limit - current) / previous) - elapsed
        } else {
            wait = (60 - elapsed) + 60 * (1 - limit / current)
        }
        wait = min(120, max(1, wait.rounded(.up)))
        return Int(wait)
    }

    private func lookup(_ key: UInt64) -> Window? { young[key] ?? old[key] }

    private mutating func store(_ key: UInt64, _ window: Window) {
        if young[key] == nil { old.removeValue(forKey: key) }
        young[key] = window
        if young.count >= capacity / 2 {
            old = young
            young = [:]
            young.reserveCapacity(capacity / 2)
        }
    }

    private static func minute(_ time: Double) -> Int64 { Int64((time / 60).rounded(.down)) }

    private static func rolled(_ window: Window?, to minute: Int64) -> Window {
        guard let window else { return Window(minute: minute, current: 0, previous: 0) }
        switch minute - window.minute {
        case 0: return window
        case 1: return Window(minute: minute, current: 0, previous: window.current)
        default: return Window(minute: minute, current: 0, previous: 0)
        }
    }
}
