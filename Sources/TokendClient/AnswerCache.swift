import TokendProto
import TokendWire

/// The state of a `CachingIntrospector`: cached active answers by token digest, the revocation
/// stream's standing, and the revocations applied recently. A value without I/O or clocks of its
/// own (every time is a parameter), kept behind one lock.
///
/// The rules it keeps:
/// - An answer is served only while the stream is *confirmed*: accepted by the server, and known
///   live (`confirmLive`) no longer than `maxStaleness` ago; and never at or past its `exp`.
/// - Only active answers are stored, and only when the stream was connected, in the same
///   connection, both when the call was sent and when its answer came back, and no revocation
///   applied in the last `recentWindow` covers it (tokend may publish an entry before its own view
///   applies it, and a catch-up is read from the log, which can be ahead of the view: an answer
///   computed meanwhile says `active` for a token this client has already seen revoked).
/// - Every connect and every disconnect empties the cache: after a reconnect the catch-up has no
///   end marker, so no answer from before it can be trusted until then; answers fetched after
///   the connect are evicted by catch-up entries that arrive later, and refused by those that
///   arrived earlier (the recent set).
struct AnswerCache {
    /// What an answer may be evicted by, besides its digest.
    enum Selector: Hashable {
        case subject(String)
        case client(String)
        case grant(String)
        case jti(String)
    }

    /// The standing of the stream when a call was sent; its answer is stored only if that still holds.
    struct Ticket: Equatable {
        var connection: UInt64
    }

    struct Figures: Equatable {
        var hits = 0
        var misses = 0
        var evictions = 0
        var reconnects = 0
        var snapshots = 0
    }

    let capacity: Int
    let maxStaleness: Duration
    let recentWindow: Duration

    private(set) var entries: [TokenDigest: IntrospectionAnswer] = [:]
    private var index: [Selector: Set<TokenDigest>] = [:]
    private(set) var connected = false
    /// Counts connects and disconnects; an answer is stored only within the one it was asked in.
    private var connection: UInt64 = 0
    /// The latest moment the stream was known live (see `confirmLive`).
    private(set) var liveAt: ContinuousClock.Instant?
    /// The last applied `seq`: the next subscription follows from it.
    private(set) var lastSeq: Int64 = 0
    private var recent: RecentRevocations
    var figures = Figures()

    init(capacity: Int, maxStaleness: Duration, recentWindow: Duration) {
        self.capacity = max(0, capacity)
        self.maxStaleness = maxStaleness
        self.recentWindow = recentWindow
        self.recent = RecentRevocations(window: recentWindow, capacity: max(1024, capacity))
    }

    /// Whether the cache may answer at `now`.
    func confirmed(at now: ContinuousClock.Instant) -> Bool {
        guard connected, let liveAt else { return false }
        return now - liveAt <= maxStaleness
    }

    /// The cached answer for `digest`, if the cache may give it at `now` (Unix `unixNow`).
    mutating func answer(for digest: TokenDigest, at now: ContinuousClock.Instant, unixNow: Double) -> IntrospectionAnswer? {
        guard confirmed(at: now), let answer = entries[digest] else { return nil }
        // RFC 7662 §2.2 / RFC 7519 §4.1.4: not on or after `exp`.
        guard unixNow < Double(answer.expiresAt) else {
            remove(digest)
            return nil
        }
        return answer
    }

    /// The standing to compare with when the answer of a call sent now comes back.
    var ticket: Ticket { Ticket(connection: connection) }

    /// Stores `answer` if the rules allow it (see the type's comment); returns whether it did.
    @discardableResult
    mutating func store(
        _ answer: IntrospectionAnswer, for digest: TokenDigest, sentWith ticket: Ticket, at now: ContinuousClock.Instant, unixNow: Double
    ) -> Bool {
        guard capacity > 0, answer.active, connected, ticket == self.ticket, unixNow < Double(answer.expiresAt) else { return false }
        guard !recent.covers(digest, answer, at: now) else { return false }
        if entries[digest] == nil, entries.count >= capacity {
            for victim in entries.evictionBatch() { remove(victim) }
        }
        var stored = answer
        stored.fromCache = true
        entries[digest] = stored
        for selector in Self.selectors(of: answer) { index[selector, default: []].insert(digest) }
        return true
    }

    /// The server accepted a subscription that was started at `startedAt`.
    mutating func streamAccepted(startedAt: ContinuousClock.Instant) {
        flush()
        connected = true
        connection &+= 1
        liveAt = startedAt
        figures.reconnects += 1
    }

    /// The subscription ended (or was refused, or never reached the server).
    mutating func streamEnded() {
        flush()
        connected = false
        connection &+= 1
        liveAt = nil
    }

    /// `OUT_OF_RANGE`: entries after `lastSeq` were collected; follow from a snapshot.
    mutating func restartFromSnapshot() {
        flush()
        lastSeq = 0
        figures.snapshots += 1
    }

    /// A call sent at `sentAt` in the current connection showed the server live and its own view
    /// fresh (health `SERVING`): the stream counts as live from then.
    mutating func confirmLive(sentAt: ContinuousClock.Instant, sentWith ticket: Ticket) {
        guard connected, ticket == self.ticket else { return }
        if liveAt.map({ $0 < sentAt }) ?? true { liveAt = sentAt }
    }

    /// Applies one Watch event: evicts what it revokes and remembers it for `recentWindow`.
    mutating func apply(_ event: Tokend_V1_RevocationEvent, at now: ContinuousClock.Instant) {
        if event.seq > lastSeq { lastSeq = event.seq }
        let digests = event.tokenHashes.compactMap { TokenDigest(bytes: $0) }
        let rule: (Selector, Int64)?
        switch event.kind {
        case "token", "jti":
            // A token entry's selector is the token's jti.
            rule = event.selector.isEmpty ? nil : (.jti(event.selector), .max)
        case "grant":
            rule = event.selector.isEmpty ? nil : (.grant(event.selector), .max)
        case "subject":
            rule = (.subject(event.selector), event.issuedBefore)
        case "client":
            rule = (.client(event.selector), event.issuedBefore)
        default:
            // A kind this library does not know: it cannot tell what it revokes.
            figures.evictions += entries.count
            flush()
            recent.refuseAll(until: now + recentWindow)
            return
        }
        for digest in digests where entries[digest] != nil {
            remove(digest)
            figures.evictions += 1
        }
        if let (selector, issuedBefore) = rule, let candidates = index[selector] {
            // iat and issued_before are whole seconds: a token of the same second is evicted too.
            for digest in candidates where (entries[digest]?.issuedAt ?? .max) <= issuedBefore {
                remove(digest)
                figures.evictions += 1
            }
        }
        recent.record(digests, rule, at: now)
    }

    private mutating func remove(_ digest: TokenDigest) {
        guard let answer = entries.removeValue(forKey: digest) else { return }
        for selector in Self.selectors(of: answer) {
            index[selector]?.remove(digest)
            if index[selector]?.isEmpty == true { index[selector] = nil }
        }
    }

    private mutating func flush() {
        entries.removeAll()
        index.removeAll()
    }

    static func selectors(of answer: IntrospectionAnswer) -> [Selector] {
        var selectors: [Selector] = [.subject(answer.subject), .client(answer.clientID)]
        if !answer.grantID.isEmpty { selectors.append(.grant(answer.grantID)) }
        if !answer.jti.isEmpty { selectors.append(.jti(answer.jti)) }
        return selectors
    }
}

/// Revocations applied in the last `window`, to refuse storing an answer they cover. Bounded: past
/// `capacity` it forgets them all and refuses every answer until a window has passed.
struct RecentRevocations {
    let window: Duration
    let capacity: Int
    private var digests: [TokenDigest: ContinuousClock.Instant] = [:]
    /// The newest `issued_before` per selector (`.max` for grant and jti), and when it was applied.
    private var rules: [AnswerCache.Selector: (issuedBefore: Int64, at: ContinuousClock.Instant)] = [:]
    private var refuseAllUntil: ContinuousClock.Instant?
    private var prunedAt: ContinuousClock.Instant?

    init(window: Duration, capacity: Int) {
        self.window = window
        self.capacity = capacity
    }

    func covers(_ digest: TokenDigest, _ answer: IntrospectionAnswer, at now: ContinuousClock.Instant) -> Bool {
        if let until = refuseAllUntil, now < until { return true }
        if let at = digests[digest], now - at <= window { return true }
        for selector in AnswerCache.selectors(of: answer) {
            if let rule = rules[selector], now - rule.at <= window, answer.issuedAt <= rule.issuedBefore { return true }
        }
        return false
    }

    mutating func record(_ revoked: [TokenDigest], _ rule: (AnswerCache.Selector, Int64)?, at now: ContinuousClock.Instant) {
        prune(at: now)
        for digest in revoked { digests[digest] = now }
        if let (selector, issuedBefore) = rule {
            rules[selector] = (max(issuedBefore, rules[selector]?.issuedBefore ?? .min), now)
        }
        if digests.count + rules.count > capacity {
            digests.removeAll()
            rules.removeAll()
            refuseAll(until: now + window)
        }
    }

    /// Refuses every answer until `instant` (what was forgotten might have covered it).
    mutating func refuseAll(until instant: ContinuousClock.Instant) {
        refuseAllUntil = max(instant, refuseAllUntil ?? instant)
    }

    /// Drops what is older than the window, at most once per half window (amortised).
    private mutating func prune(at now: ContinuousClock.Instant) {
        if let prunedAt, now - prunedAt < window / 2 { return }
        prunedAt = now
        digests = digests.filter { now - $0.value <= window }
        rules = rules.filter { now - $0.value.at <= window }
    }
}
