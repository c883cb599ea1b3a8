import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTPTypes
import ServiceLifecycle
import Synchronization
import TokendCore
import TokendWire

/// Introspection answered on the event loop when memory can answer it: the HTTP/1.1 fast path
/// (issue 14). Everything it does not answer goes to the router unchanged, which then answers
/// exactly as it would have without the fast path.
///
/// It answers two cases: a complete `POST /oauth2/introspect` form request (RFC 7662, a JSON
/// answer) and a request to `/authz` itself (forward auth, any method, the query as the gateway
/// sent it), when the caller (the gateway for `/authz`) is in the client cache with the right
/// secret (`ClientAuthenticator.verifyFromCache`; on a connection that presents exactly the
/// credentials it presented before, the cached entry that verified them: `RememberedCredential`)
/// and memory can decide on the token
/// (`Introspector.introspectFromMemory`). A signed answer, any error (a wrong secret, a malformed
/// form or query, a missing role, a guessing limit) and anything unusual in the request goes to
/// the router. The answer is the router's, byte for byte: the same status, headers in the same
/// order and body, and the same access log line and metrics (`IntrospectionFastPathTests` compares
/// both paths on a corpus).
///
/// Where the form endpoint's answer needs the token's record from the store (a cache miss, a
/// stale view), the fast path reads it itself: the request waits on its event loop, its token's
/// hash is queued in `misses` (a `CallbackBatcher`, whose workers read a batch of queued hashes in
/// one query), and the answer is written when the record comes, or a 503 when the read fails or
/// the store's time limit passes first: what the router would have answered, without a task per
/// request. `/authz` misses go to the router. `misses` runs as a service of the listener
/// (`lookupService`); while it does not, misses go to the router too.
public final class IntrospectionFastPath: Sendable {
    let authenticator: ClientAuthenticator
    let introspector: Introspector
    let metrics: TokendMetrics
    let logger: Logger
    /// The store reads of cache misses, batched.
    let misses: CallbackBatcher<TokenHash, TokenRecord>
    /// How long a miss waits for its record before it is answered 503: the store's time limit.
    let missTimeLimit: TimeAmount?
    /// Whether the fast path reads misses at all: not with a standby, whose reads fall back to the
    /// primary each under a time limit of its own (the router's lookup may take two limits).
    let readsMisses: Bool
    /// Whether the replica keeps token memory: without it (`TOKEND_CACHE_ENTRIES=0`) every
    /// introspection needs the store, and the byte path (`RawIntrospectionHandler`) answers none
    /// itself (it hands each on parsed).
    let hasMemory: Bool
    private let counter = AnswerCounter()

    /// Requests the fast path has answered (the router answered the others).
    public var answered: Int { counter.value.load(ordering: .relaxed) }

    /// Of those, the ones answered straight from the connection's bytes (`RawIntrospectionHandler`).
    public var answeredFromBytes: Int { bytesCounter.value.load(ordering: .relaxed) }
    let bytesCounter = AnswerCounter()

    /// Requests the byte path read and handed on parsed, past the decoder (a miss, or one for the router).
    public var handedOnParsed: Int { parsedCounter.value.load(ordering: .relaxed) }
    let parsedCounter = AnswerCounter()

    /// The largest body the fast path reads before handing a request to the router: a form with a
    /// token and client credentials is far smaller.
    static let maximumBody = 8 * 1024
    static let path = OAuthController.introspectPath

    /// The requests the fast path may answer.
    enum Kind {
        /// `POST /oauth2/introspect`.
        case introspection
        /// `/authz`, with the raw query (or none).
        case forwardAuth(query: String?)

        var route: String {
            switch self {
            case .introspection: IntrospectionFastPath.path
            case .forwardAuth: ForwardAuthController.route
            }
        }
    }

    /// An answer: what the router would have written, and who asked (for the access log).
    struct Answer {
        var status: HTTPResponse.Status
        /// Its fields but `Date` (which the writer adds last).
        var fields: HTTPFields {
            guard case .fields(let fields) = shape else { return IntrospectionJSON.fields(contentLength: body.readableBytes) }
            return fields
        }
        var shape: Shape
        var body: ByteBuffer
        var clientID: String

        enum Shape {
            /// `200`, `IntrospectionJSON.headers` and `Content-Length`: the head the byte path
            /// writes from `IntrospectionJSON.okHead` (every answer from memory).
            case introspectionJSON
            case fields(HTTPFields)
        }

        init(status: HTTPResponse.Status, fields: HTTPFields, body: ByteBuffer, clientID: String) {
            self.status = status
            self.shape = .fields(fields)
            self.body = body
            self.clientID = clientID
        }

        /// An introspection's `200` JSON answer.
        init(introspectionJSON body: ByteBuffer, clientID: String) {
            self.status = .ok
            self.shape = .introspectionJSON
            self.body = body
            self.clientID = clientID
        }
    }

    /// What the fast path does with a complete request.
    enum Outcome {
        case answer(Answer)
        /// An introspection that needs its token's record from the store.
        case read(PendingIntrospection, clientID: String)
        case router
    }

    /// `storeTimeLimit`: how long a cache miss waits for the store (`nil`: as long as the read
    /// takes); by default the limit of a `TimeLimitedStore` under the replica, as the router's
    /// reads have.
    /// `reader`: reads the misses' records without a task (the store's own, `StoreBackend.batchReader`),
    /// under that limit and counted with the replica's store calls; without one, a worker task
    /// reads them through the replica (`Introspector.records`).
    public init(
        _ tokend: Tokend,
        metrics: TokendMetrics,
        logger: Logger,
        storeTimeLimit: TimeInterval? = nil,
        reader: (any TokenBatchReader)? = nil
    ) {
        self.authenticator = tokend.authenticator
        let introspector = tokend.introspector
        self.introspector = introspector
        self.metrics = metrics
        self.logger = logger
        let seconds = storeTimeLimit ?? tokend.replica.storeTimeLimit
        // Clamped to a day, so that any configured limit converts.
        let limit = seconds.map { TimeAmount.nanoseconds(Int64(min(max($0, 0), 86_400) * 1_000_000_000)) }
        self.missTimeLimit = limit
        if let reader {
            let calls = tokend.replica.storeCallCounters
            let duration = limit.map { Duration.nanoseconds($0.nanoseconds) }
            self.misses = CallbackBatcher { hashes, completion in
                reader.readTokens(hashes, timeLimit: duration, completion: calls?.counting(completion) ?? completion)
            }
        } else {
            self.misses = CallbackBatcher { hashes in try await introspector.records(hashes) }
        }
        self.readsMisses = tokend.replica.standby == nil
        self.hasMemory = tokend.replica.memory != nil
    }

    /// Whether cache misses are read here now (`lookupService` runs; no standby); else the
    /// router answers them.
    public var readsCacheMisses: Bool { readsMisses && misses.isRunning }

    /// The service that reads the cache misses' records: run it beside the listener.
    public var lookupService: some Service { MissLookups(batcher: misses) }

    /// Which request of the fast path's, if any, `head` starts: `POST /oauth2/introspect`, or
    /// `/authz` itself (not the paths below it), with a body of a known, small size, or a chunked
    /// one, and nothing that changes how the connection goes on: no `Expect`, and no `Connection`
    /// but `keep-alive` (Hummingbird closes the connection after a request with `Connection: close`).
    func kind(of head: HTTPRequest) -> Kind? {
        let fields = head.headerFields
        guard !fields.contains(.expect) else { return nil }
        if let connection = fields.value(.connection), connection.lowercased() != "keep-alive" { return nil }
        if let length = fields.value(.contentLength) {
            guard let size = Int(length), size <= Self.maximumBody else { return nil }
        }
        guard let target = head.path else { return nil }
        if head.method == .post, target == Self.path { return .introspection }
        let route = ForwardAuthController.route
        // Not `contains("#")`: with Foundation imported that is NSString's search.
        guard target.hasPrefix(route), !target.utf8.contains(UInt8(ascii: "#")) else { return nil }
        let rest = target.dropFirst(route.count)
        if rest.isEmpty { return .forwardAuth(query: nil) }
        if rest.first == "?" { return .forwardAuth(query: String(rest.dropFirst())) }
        return nil
    }

    /// What to do with a complete request. `remembered`: the connection's (see `RememberedCredential`).
    func answer(_ kind: Kind, head: HTTPRequest, body: ByteBuffer, source: String?, remembered: inout RememberedCredential?) -> Outcome {
        switch kind {
        case .introspection: introspection(head, body: body, source: source, remembered: &remembered)
        case .forwardAuth(let query): forwardAuth(head, query: query, source: source, remembered: &remembered).map { .answer($0) } ?? .router
        }
    }

    /// The caller, when the client cache can tell (`ClientAuthenticator.verifyFromCache`); `nil`
    /// leaves the request to the router. `header`: the header value the credentials are read from
    /// (`nil` when they are not a header's alone): when it is exactly the connection's remembered
    /// one, the entry that verified it is asked whether it still holds, without another HMAC;
    /// else the credentials are verified, and remembered when they came from `header`.
    private func cachedCaller(
        header: String?,
        source: String?,
        remembered: inout RememberedCredential?,
        credentials: () throws -> ClientCredentials
    ) -> ClientRecord? {
        if let header, let memo = remembered, memo.matches(header),
            let caller = authenticator.authenticateRemembered(memo.verified, source: source)
        {
            return caller
        }
        guard let presented = try? credentials(),
            let (caller, verified) = authenticator.verifyFromCache(clientID: presented.clientID, secret: presented.secret, source: source)
        else { return nil }
        if let header { remembered = RememberedCredential(header: header, verified: verified) }
        return caller
    }

    /// `OAuthController.introspect`'s JSON answer, or the read it needs first.
    private func introspection(_ head: HTTPRequest, body: ByteBuffer, source: String?, remembered: inout RememberedCredential?) -> Outcome {
        let fields = head.headerFields
        guard (try? OAuthController.checkFormContentType(fields)) != nil, !OAuthController.wantsJWT(fields.value(.accept)),
            let form = try? OAuthController.form(body)
        else { return .router }
        // With a `client_secret` in the form too, the credentials are an error (`credentials`).
        let header = form["client_secret"] == nil ? fields.value(.authorization) : nil
        guard
            let caller = cachedCaller(header: header, source: source, remembered: &remembered, credentials: {
                try ClientAuthentication.credentials(headers: fields, form: form)
            }),
            let outcome = introspector.introspectWithoutWaiting(form["token"], caller: caller)
        else { return .router }
        switch outcome {
        case .answered(let result): return .answer(Self.introspectionAnswer(result, clientID: caller.id))
        case .read(let pending): return readsMisses ? .read(pending, clientID: caller.id) : .router
        }
    }

    private static func introspectionAnswer(_ result: IntrospectionResult, clientID: String) -> Answer {
        Answer(introspectionJSON: IntrospectionJSON.body(result), clientID: clientID)
    }

    /// Queues the read of `pending`'s record; `completion` gets it (or the read's failure), on
    /// some thread. `false` when the reads do not run (`lookupService`): the router must answer.
    func read(_ pending: PendingIntrospection, completion: @escaping @Sendable (Result<TokenRecord?, any Error>) -> Void) -> Bool {
        guard let limit = missTimeLimit else { return misses.enqueue(pending.hash, completion: completion) }
        return misses.enqueue(pending.hash, deadline: .now + .nanoseconds(limit.nanoseconds)) { record in
            // Not read because its time was up while queued: what the handler's timer answers.
            completion(record.mapError { $0 is CallbackBatcher<TokenHash, TokenRecord>.Expired ? Self.timeout(limit) : $0 })
        }
    }

    /// What a miss whose read outlasted `limit` is answered with (as the store's own time limit).
    static func timeout(_ limit: TimeAmount) -> StoreTimeout {
        StoreTimeout(seconds: Double(limit.nanoseconds) / 1e9)
    }

    /// The answer to an introspection once its read has returned `record` or failed: the
    /// router's JSON, or its 503.
    func answer(_ pending: PendingIntrospection, clientID: String, record: Result<TokenRecord?, any Error>) -> Answer {
        switch introspector.complete(pending, with: record) {
        case .success(let result):
            return Self.introspectionAnswer(result, clientID: clientID)
        case .failure(let error):
            let oauth = OAuthError(error)
            let rendered = oauth.rendered
            var headers = rendered.headers
            headers[.contentLength] = String(rendered.body.readableBytes)
            return Answer(status: oauth.status, fields: headers, body: rendered.body, clientID: clientID)
        }
    }

    /// `ForwardAuthController.authorize`'s answer.
    private func forwardAuth(_ head: HTTPRequest, query: String?, source: String?, remembered: inout RememberedCredential?) -> Answer? {
        let fields = head.headerFields
        guard let requirements = try? ForwardAuthController.requirements(query: query),
            let gateway = cachedCaller(
                header: fields.value(ForwardAuthController.gatewayCredentials),
                source: source,
                remembered: &remembered,
                credentials: { try ForwardAuthController.gatewayCredentials(fields) }
            ),
            let decision = introspector.authorizeFromMemory(
                BearerPresentation(authorization: fields.value(.authorization)),
                caller: gateway,
                requirements: requirements
            )
        else { return nil }
        let response = ForwardAuthController.response(GatewayAnswer(decision))
        return Answer(status: response.status, fields: response.headers, body: ByteBuffer(), clientID: gateway.id)
    }

    /// What `AccessLog` records for a request the router answered.
    func record(_ kind: Kind, method: HTTPRequest.Method, status: Int, clientID: String, duration: Duration) {
        counter.value.add(1, ordering: .relaxed)
        AccessLog.record(
            logger: logger,
            metrics: metrics,
            listener: "public",
            requestID: "\(RequestID())",
            method: method,
            route: kind.route,
            status: status,
            clientID: clientID,
            duration: duration
        )
    }
}

final class AnswerCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Runs the fast path's miss reads (`IntrospectionFastPath.misses`) until a shutdown: as a
/// service of the listener's, so that it stops only once the listener has.
private struct MissLookups: Service {
    let batcher: CallbackBatcher<TokenHash, TokenRecord>

    func run() async throws {
        await cancelWhenGracefulShutdown { await batcher.run() }
    }
}

/// The fast path in a connection's pipeline, between the HTTP/1.1 codec and Hummingbird.
///
/// A request is taken only while no earlier request of the connection waits for the router's
/// answer (so answers keep their order under pipelining) and while the channel is writable (a
/// caller that does not read its answers meets the router's back-pressure). Its parts are held
/// until its end; if the fast path does not answer it, they go on to the router as they came,
/// and so do they when a shutdown, an error or the caller's half-close arrives first.
///
/// A request whose answer needs a store read waits for it on the event loop: the handler reads no
/// more from the connection meanwhile (it holds back `read`), and what arrives anyway (pipelined
/// requests decoded from the same bytes, a shutdown, the caller's half-close, an error) is kept
/// and handled in order once the answer is written. A connection that closes meanwhile drops it.
final class IntrospectionFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case idle
        /// A request the fast path may answer, held: which, its head, its body so far and when it began.
        case holding(IntrospectionFastPath.Kind, HTTPRequest, ByteBuffer?, ContinuousClock.Instant)
        /// The rest of a request that goes to the router.
        case forwarding
        /// A request waiting for its token's record.
        case reading(Reading)
    }

    private struct Reading {
        var id: UInt64
        var pending: PendingIntrospection
        var clientID: String
        var kind: IntrospectionFastPath.Kind
        var method: HTTPRequest.Method
        var start: ContinuousClock.Instant
        var timeout: Scheduled<Void>?
    }

    private let fastPath: IntrospectionFastPath
    private var state = State.idle
    /// What arrived while a request was reading, for after its answer.
    private var deferred: [DeferredInbound] = []
    /// A `read` held back while a request was reading.
    private var readHeldBack = false
    /// The connection has closed.
    private var inactive = false
    private var reads: UInt64 = 0
    /// Requests handed to the router whose answer has not been written yet.
    private var routerAnswersDue = 0
    private var needsFlush = false
    private var date = HTTPDate()
    private var remembered: RememberedCredential?

    init(_ fastPath: IntrospectionFastPath) {
        self.fastPath = fastPath
    }

    func handlerAdded(context: ChannelHandlerContext) {
        RawIntrospectionHandler.install(fastPath, context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            if routerAnswersDue == 0, context.channel.isWritable, let kind = fastPath.kind(of: head) {
                state = .holding(kind, head, nil, .now)
            } else {
                state = .forwarding
                forward(.head(head), context: context)
            }
        case (.holding(let kind, let head, var body, let start), .body(let chunk)):
            if (body?.readableBytes ?? 0) + chunk.readableBytes > IntrospectionFastPath.maximumBody {
                release(context: context)
                forward(part, context: context)
            } else {
                if body == nil { body = chunk } else { body!.writeImmutableBuffer(chunk) }
                state = .holding(kind, head, body, start)
            }
        case (.holding(let kind, let head, let body, let start), .end(nil)):
            let source = context.channel.remoteAddress?.ipAddress
            switch fastPath.answer(kind, head: head, body: body ?? ByteBuffer(), source: source, remembered: &remembered) {
            case .answer(let answer):
                state = .idle
                respond(answer, context: context)
                fastPath.record(kind, method: head.method, status: answer.status.code, clientID: answer.clientID, duration: .now - start)
            case .read(let pending, let clientID):
                let reading = Reading(id: reads, pending: pending, clientID: clientID, kind: kind, method: head.method, start: start)
                if !read(reading, context: context) {
                    release(context: context)
                    forward(part, context: context)
                }
            case .router:
                release(context: context)
                forward(part, context: context)
            }
        case (.holding, _):  // trailers, or a head the decoder never sends mid-request
            release(context: context)
            forward(part, context: context)
        case (.forwarding, _), (.idle, _):
            forward(part, context: context)
        case (.reading, _):
            // Handled once the reading request is answered.
            deferred.append(.read(data))
        }
    }

    /// Starts `reading`'s store read; `false` when the fast path's reads do not run.
    private func read(_ reading: Reading, context: ChannelHandlerContext) -> Bool {
        var reading = reading
        reads &+= 1
        reading.id = reads
        let id = reads
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let queued = fastPath.read(reading.pending) { record in
            loop.execute {
                let (handler, context) = bound.value
                handler.answer(id, record: record, context: context)
            }
        }
        guard queued else { return false }
        if let limit = fastPath.missTimeLimit {
            reading.timeout = loop.assumeIsolated().scheduleTask(in: limit) {
                self.answer(id, record: .failure(IntrospectionFastPath.timeout(limit)), context: context)
            }
        }
        state = .reading(reading)
        return true
    }

    /// Answers the reading request `id` (if it still is: the first of its record and its time
    /// limit answers), then handles what arrived meanwhile.
    private func answer(_ id: UInt64, record: Result<TokenRecord?, any Error>, context: ChannelHandlerContext) {
        guard case .reading(let reading) = state, reading.id == id else { return }
        reading.timeout?.cancel()
        state = .idle
        // Answered, logged and counted as the router's handler would, which runs to its end
        // whether or not the caller is still there.
        let answer = fastPath.answer(reading.pending, clientID: reading.clientID, record: record)
        fastPath.record(reading.kind, method: reading.method, status: answer.status.code, clientID: answer.clientID, duration: .now - reading.start)
        guard !inactive else { return }
        respond(answer, context: context)
        // Sent before anything deferred is handled: a shutdown or half-close among it makes the
        // router close the connection at once, which would drop an unflushed answer.
        needsFlush = false
        context.flush()
        let pending = deferred
        deferred = []
        for item in pending {
            if case .reading = state {
                // A request handled here waits for a read in turn: the rest waits behind it.
                deferred.append(item)
                continue
            }
            switch item {
            case .read(let data): channelRead(context: context, data: data)
            case .event(let event): userInboundEventTriggered(context: context, event: event)
            case .error(let error): errorCaught(context: context, error: error)
            }
        }
        // Ends this round as a read would: flushes the answers, and hands the router what it was given.
        channelReadComplete(context: context)
        if readHeldBack, !isReading {
            readHeldBack = false
            context.read()
        }
    }

    private var isReading: Bool {
        if case .reading = state { return true }
        return false
    }

    func read(context: ChannelHandlerContext) {
        if isReading {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Nobody to answer: a reading request is still answered (logged and counted), but not
        // written, and what was deferred behind it is dropped, as the connection's unread bytes are.
        inactive = true
        deferred = []
        context.fireChannelInactive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if isReading {
            deferred.append(.event(event))
            return
        }
        // A shutdown (`ChannelShouldQuiesceEvent`) or the caller's half-close: the router must know
        // of a request that has begun, as it would have without the fast path.
        release(context: context)
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isReading {
            deferred.append(.error(error))
            return
        }
        release(context: context)
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routerAnswersDue > 0 { routerAnswersDue -= 1 }
        context.write(data, promise: promise)
    }

    /// Hands a held request's parts so far to the router; the rest of it follows them.
    private func release(context: ChannelHandlerContext) {
        guard case .holding(_, let head, let body, _) = state else { return }
        state = .forwarding
        forward(.head(head), context: context)
        if let body { forward(.body(body), context: context) }
    }

    private func forward(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head: routerAnswersDue += 1
        case .end: state = .idle
        case .body: break
        }
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// Writes `answer` as Hummingbird writes the router's (head, body, end), with the `Date`
    /// header it adds last.
    private func respond(_ answer: IntrospectionFastPath.Answer, context: ChannelHandlerContext) {
        var fields = answer.fields
        fields[.date] = date.current()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: fields))), promise: nil)
        if answer.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(answer.body)), promise: nil) }
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        needsFlush = true
    }
}

/// RFC 9110 §5.6.7 IMF-fixdate of the current second ("Sun, 06 Nov 1994 08:49:37 GMT"), formatted
/// once per second.
struct HTTPDate {
    private var second = Int.min
    private var text = ""

    mutating func current() -> String {
        let now = Int(Date().timeIntervalSince1970)
        if now != second {
            second = now
            text = Self.format(now)
        }
        return text
    }

    static func format(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
