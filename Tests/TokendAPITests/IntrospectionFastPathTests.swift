import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import PostgresNIO
import Testing
@testable import TokendAPI
@testable import TokendCore
import TokendPostgres
import TokendTestSupport

/// The introspection fast path (`IntrospectionFastPath`: the form endpoint and `/authz`) against
/// the router alone: the same raw bytes, malformed requests included, sent to a listener with the fast path and to one without,
/// over one replica, must get the same bytes back (status line, headers in order, body), but for
/// the `Date` header's value.
@Suite struct IntrospectionFastPathTests {
    @Test(arguments: StoreKind.allCases)
    func bothPathsAnswerEveryRequestByteForByte(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let restricted = try await h.caller("rs-a", [.introspect], audiences: ["https://a.example"])
            let issuer = try await h.caller("as", [.issue])
            let live = try await h.issue(IssueRequest(clientID: "as", scope: "read", audiences: ["https://b.example"]))
            let revoked = try await h.issue(IssueRequest(clientID: "as"))
            _ = try await h.services.revoker.revoke(.token(TokenHash(token: revoked.accessToken)), reason: "test")
            let unknown = "tkd_at_" + String(repeating: "A", count: 43)
            let corpus = Self.corpus(rs: rs, restricted: restricted, issuer: issuer, live: live.accessToken, revoked: revoked.accessToken, unknown: unknown)

            let fastPath = h.services.fastPath()
            try await publicListener(h.services, fastPath: fastPath).test(.live) { fast in
                try await fastPath.untilReadingMisses()
                try await publicListener(h.services, fastPath: nil).test(.live) { plain in
                    let fastPort = try #require(fast.port)
                    let plainPort = try #require(plain.port)
                    // Warm the client and token caches, as a serving replica's are.
                    _ = try await Self.exchange(corpus[0].bytes, port: plainPort)
                    for item in corpus {
                        let expected = try await Self.exchange(item.bytes, port: plainPort)
                        let got = try await Self.exchange(item.bytes, port: fastPort)
                        #expect(!expected.isEmpty, "\(item.name): no answer")
                        #expect(Self.withoutDate(got) == Self.withoutDate(expected), "\(item.name)")
                        #expect(Self.dates(got).count == Self.dates(expected).count, "\(item.name): Date headers")
                    }
                }
            }
            // The comparison means something only if the fast path answered a good share.
            let answerable = corpus.filter(\.fastPathAnswers)
            #expect(fastPath.answered >= answerable.reduce(0) { $0 + $1.requests }, "the fast path answered \(fastPath.answered)")
            // Each item comes on a connection of its own: the byte path sees every one first.
            #expect(fastPath.answeredFromBytes > 0, "the byte path answered none")
            // … and handed some on parsed, past the decoder (a miss, a wrong secret, …).
            #expect(fastPath.handedOnParsed > 0, "the byte path handed none on parsed")
        }
    }

    /// Requests taken one at a time on a connection that shows the fast path no earlier request:
    /// each answer, in order. A request waiting for its store read holds back the ones after it,
    /// and the fast path steps aside for a request while an earlier one waits for the router (so
    /// answers cannot overtake).
    @Test(arguments: StoreKind.allCases)
    func pipelinedAnswersKeepTheirOrder(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (rs, fast) = try await Self.callerAndLiveToken(h.services)
            let unknown = "tkd_at_" + String(repeating: "B", count: 43)
            let read = Self.post("token=\(unknown)", auth: rs.basic)
            let router = Self.post("token_type_hint=access_token", auth: rs.basic)
            let fastPath = h.services.fastPath()
            try await publicListener(h.services, fastPath: fastPath).test(.live) { client in
                try await fastPath.untilReadingMisses()
                let port = try #require(client.port)
                _ = try await Self.exchange(fast, port: port)  // caches the caller and the token
                let before = fastPath.answered
                let answer = try await Self.exchange(fast + read + fast + router + fast + fast, port: port)
                let bodies = answer.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix(15) }
                #expect(
                    bodies == [#"{"active":true,"#, #"{"active":false"#, #"{"active":true,"#, #"{"error":"inval"#, #"{"active":true,"#, #"{"active":true,"#],
                    "\(answer)"
                )
                // The first three went the fast way, the read among them. The two after the
                // router's were handed to it too, unless the router had answered before they were
                // read (the bytes came in two reads).
                #expect((3...5).contains(fastPath.answered - before), "\(fastPath.answered - before)")
            }
            // Every answer is counted as the access log counts the router's.
            let exposition = h.services.metrics.exposition()
            let line = exposition.split(separator: "\n").first {
                $0.hasPrefix("tokend_http_requests_total{") && $0.contains(#"route="/oauth2/introspect""#) && $0.contains(#"status="200""#)
            }
            #expect(line?.split(separator: " ").last == "6", "\(exposition)")
        }
    }

    /// Credentials the fast path verified on a connection are remembered there
    /// (`RememberedCredential`): the same header again skips the HMAC, but only while the client's
    /// cached entry that verified it holds. A rotation through this replica, a wrong secret and
    /// another client's credentials on the same connection are each answered as the router answers
    /// them, as are the gateway's credentials on `/authz`.
    @Test(arguments: StoreKind.allCases)
    func aConnectionsRememberedCredentialsAreOnlyAsGoodAsTheClientCache(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (rs, request) = try await Self.callerAndLiveToken(h.services)
            let token = try #require(request.split(separator: "token=").last.map(String.init))
            let (_, otherSecret) = try await h.services.registry.create(id: "gw", roles: [Role.introspect.rawValue], audiences: [])
            let other = Caller(id: "gw", secret: otherSecret)
            let fastPath = h.services.fastPath()
            try await publicListener(h.services, fastPath: fastPath).test(.live) { client in
                try await fastPath.untilReadingMisses()
                let port = try #require(client.port)
                try await Self.withConnection(port: port) { ask in
                    // The first caches the client (the router), the second verifies and remembers.
                    for _ in 0..<4 { #expect(try await ask(request).contains(#"{"active":true,"#)) }
                    let before = fastPath.answered
                    #expect(try await ask(request).contains(#"{"active":true,"#))
                    #expect(fastPath.answered == before + 1, "the remembered credentials were not answered on the fast path")
                    let wrong = Caller(id: rs.id, secret: rs.secret + "x")
                    #expect(try await ask(Self.post("token=\(token)", auth: wrong.basic)).hasPrefix("HTTP/1.1 401 "))
                    #expect(try await ask(request).contains(#"{"active":true,"#))
                    // Another client's credentials on the same connection are its own.
                    for _ in 0..<2 { #expect(try await ask(Self.post("token=\(token)", auth: other.basic)).contains(#"{"active":true,"#)) }
                    #expect(try await ask(request).contains(#"{"active":true,"#))
                    // The gateway's, on `/authz`.
                    for _ in 0..<3 {
                        let answer = try await ask(Self.authz(gateway: other.basic, authorization: "Bearer \(token)"))
                        #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer)")
                    }
                    // A rotation through this replica ends what the connection remembered at once,
                    // also once the client's new entry is cached (by the first refusal).
                    _ = try await h.services.registry.rotateSecret(id: "gw")
                    for _ in 0..<2 {
                        let gone = try await ask(Self.authz(gateway: other.basic, authorization: "Bearer \(token)"))
                        #expect(gone.hasPrefix("HTTP/1.1 401 "), "after a rotation: \(gone)")
                    }
                    _ = try await h.services.registry.rotateSecret(id: rs.id)
                    for _ in 0..<2 {
                        let rotated = try await ask(request)
                        #expect(rotated.hasPrefix("HTTP/1.1 401 "), "after a rotation: \(rotated)")
                    }
                }
            }
        }
    }

    /// Opens a connection to `port` and hands `body` a function that sends one request on it and
    /// returns its whole answer (head and `Content-Length` body, framed by
    /// `RawIntrospectionTests.whole`). Unlike `RawIntrospectionTests.inTurns`, the caller may act
    /// between two requests (a secret rotation) on the same connection.
    static func withConnection(port: Int, _ body: (_ ask: (String) async throws -> String) async throws -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        try await channel.executeThenClose { inbound, outbound in
            // Used by one request at a time (each awaits its answer), under `withDeadline`'s task.
            nonisolated(unsafe) var iterator = inbound.makeAsyncIterator()
            nonisolated(unsafe) var received: [UInt8] = []
            try await body { request in
                try await withDeadline("an answer from port \(port)", .seconds(30)) {
                    try await outbound.write(ByteBuffer(string: request))
                    while true {
                        if let length = RawIntrospectionTests.whole(received) {
                            defer { received.removeFirst(length) }
                            return String(decoding: received[..<length], as: UTF8.self)
                        }
                        guard let chunk = try await iterator.next() else { throw ConnectionEnded() }
                        received += chunk.readableBytesView
                    }
                }
            }
        }
    }

    struct ConnectionEnded: Error {}

    /// A store read that fails is answered as the router answers it (503, byte for byte), and
    /// the request pipelined behind it is answered after it.
    @Test(arguments: StoreKind.allCases)
    func aFailedReadIsAnsweredAsTheRouterAnswersIt(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (rs, hit) = try await Self.callerAndLiveToken(h.services)
            let miss = Self.post("token=tkd_at_" + String(repeating: "C", count: 43), auth: rs.basic)
            let fastPath = h.services.fastPath()
            try await publicListener(h.services, fastPath: fastPath).test(.live) { fast in
                try await fastPath.untilReadingMisses()
                try await publicListener(h.services, fastPath: nil).test(.live) { plain in
                    let fastPort = try #require(fast.port)
                    let plainPort = try #require(plain.port)
                    _ = try await Self.exchange(hit, port: plainPort)  // caches the caller and the token
                    try await h.takeDown()
                    let expected = try await Self.exchange(miss + hit, port: plainPort)
                    let before = fastPath.answered
                    let got = try await Self.exchange(miss + hit, port: fastPort)
                    #expect(expected.hasPrefix("HTTP/1.1 503 "), "\(expected)")
                    #expect(expected.contains(#"{"active":true,"#), "\(expected)")
                    #expect(Self.withoutDate(got) == Self.withoutDate(expected))
                    #expect(fastPath.answered - before == 2)
                }
            }
        }
    }

    /// A store read that outlasts the store's time limit is answered 503 at the limit while the
    /// read still hangs (the `tokens` table is locked), and the connection goes on: the request
    /// pipelined behind it is answered next. `ownLimit`: the limit is given to the fast path over
    /// a store without one (only its timer can answer), or it is the store's under the replica
    /// (`TimeLimitedStore`), as `tokend serve` builds it.
    @Test(arguments: [true, false])
    func aReadPastTheTimeLimitIsAnswered503AtTheLimit(ownLimit: Bool) async throws {
        // The store's limit also bounds this test's set-up calls: wider, for a busy machine.
        let limit = ownLimit ? 1.5 : 5
        try await Self.withLockableStore { postgres, database in
            let store: any TokendStore = ownLimit ? postgres : TimeLimitedStore(postgres, seconds: limit)
            let services = Services(store: store, now: ManualClock().now)
            // Set up without the limit (a busy machine's store call can outlast it), then the
            // replica under test syncs its view, asked again while a call does.
            let (rs, hit) = try await Self.callerAndLiveToken(Services(store: postgres, now: ManualClock().now))
            let feed = try #require(services.replica.feed)
            try await poll(until: "the replica's view is fresh") { (try? await feed.sync()) != nil }
            let miss = Self.post("token=tkd_at_" + String(repeating: "D", count: 43), auth: rs.basic)
            let fastPath = IntrospectionFastPath(
                services.tokend,
                metrics: services.metrics,
                logger: TestEnvironment.logger,
                storeTimeLimit: ownLimit ? limit : nil
            )
            try await publicListener(services, fastPath: fastPath).test(.live) { listener in
                try await fastPath.untilReadingMisses()
                let port = try #require(listener.port)
                // Caches the caller and the token (asked again while a busy machine's store
                // outlasts its limit).
                try await poll(until: "the token is answered active") {
                    try await Self.exchange(hit, port: port).contains(#"{"active":true,"#)
                }
                try await DatabaseProbe.withTableLock("ACCESS EXCLUSIVE", on: ["tokens"], in: database) { lock in
                    let before = fastPath.answered
                    let start = ContinuousClock.now
                    // `exchange` gives up after 30 s; the lock is held until it returns.
                    let answer = try await Self.exchange(miss + hit, port: port)
                    let elapsed = ContinuousClock.now - start
                    #expect(answer.hasPrefix("HTTP/1.1 503 "), "\(answer)")
                    #expect(answer.contains("Retry-After: 1") && answer.contains(#""error":"temporarily_unavailable""#), "\(answer)")
                    #expect(answer.contains(#"{"active":true,"#), "the request behind it: \(answer)")
                    #expect(elapsed >= .milliseconds(Int64(limit * 1000)) && elapsed < .seconds(limit + 10), "\(elapsed)")
                    #expect(fastPath.answered - before == 2)
                    // Not earlier than the limit, so not a failed read: the read still waits for
                    // the lock (or, on a busy machine, its hash expired in the queue unread).
                    lock.release()
                }
            }
        }
    }

    /// A shutdown that begins while a request waits for its read (the connection is quiesced):
    /// the answer is still sent, whole, before the connection closes.
    @Test func aShutdownWhileAReadWaitsStillSendsTheAnswer() async throws {
        try await Self.withLockableStore { store, database in
            let services = Services(store: store, now: ManualClock().now)
            let (rs, hit) = try await Self.callerAndLiveToken(services)
            let miss = Self.post("token=tkd_at_" + String(repeating: "E", count: 43), auth: rs.basic)
            let fastPath = services.fastPath()
            let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
            let (proceed, proceedSink) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    try await publicListener(services, fastPath: fastPath).test(.live) { listener in
                        try await fastPath.untilReadingMisses()
                        let port = try #require(listener.port)
                        _ = try await Self.exchange(hit, port: port)  // caches the caller and the token
                        portSink.yield(port)
                        for await _ in proceed { break }
                    }
                    // Returning began the shutdown, which ended once the connection had closed.
                    return nil
                }
                var portIterator = ports.makeAsyncIterator()
                let port = try #require(await portIterator.next())
                try await DatabaseProbe.withTableLock("ACCESS EXCLUSIVE", on: ["tokens"], in: database) { lock in
                    // Not half-closed: the shutdown is what ends this connection.
                    group.addTask { try await Self.exchange(miss, port: port, halfClose: false) }
                    // Queued or being read, and unable to finish while the lock is held.
                    try await poll(until: "the read is under way") { fastPath.misses.workers == 1 }
                    proceedSink.yield()
                    try await poll(until: "the listener stops taking connections") {
                        (try? await Self.exchange(hit, port: port)) == nil
                    }
                    lock.release()
                }
                var answers: [String] = []
                for try await answer in group { if let answer { answers.append(answer) } }
                #expect(answers.count == 1)
                let answer = answers.first ?? ""
                #expect(answer.hasPrefix("HTTP/1.1 200 ") && answer.hasSuffix(#"{"active":false}"#), "\(answer)")
            }
        }
    }

    /// A fresh, migrated PostgreSQL store of its own and its database's name (for a table lock).
    static func withLockableStore(_ body: @Sendable (PostgresStore, String) async throws -> Void) async throws {
        let (database, url) = try await createDatabase()
        // A small pool: every suite runs at once on one test server.
        var configuration = try DatabaseURL.configuration(url)
        configuration.options.maximumConnections = 4
        let client = PostgresClient(configuration: configuration, backgroundLogger: TestEnvironment.logger)
        let result: Result<Void, any Error>
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                try await PostgresMigrator(client: client, logger: TestEnvironment.logger).migrate()
                try await body(PostgresStore(client: client, logger: TestEnvironment.logger), database)
            }
            result = .success(())
        } catch {
            result = .failure(error)
        }
        try await dropDatabase(database)
        try result.get()
    }

    /// Registers an introspecting caller and issues a token; the caller and a request for it.
    static func callerAndLiveToken(_ services: Services) async throws -> (Caller, String) {
        try await services.replica.feed?.sync()
        let (_, secret) = try await services.registry.create(id: "rs", roles: [Role.introspect.rawValue], audiences: [])
        let rs = Caller(id: "rs", secret: secret)
        _ = try await services.registry.create(id: "as", roles: [Role.issue.rawValue], audiences: [])
        let live = try await services.issuer.issue(IssueRequest(clientID: "as"))
        return (rs, Self.post("token=\(live.accessToken)", auth: rs.basic))
    }

    struct Item {
        let name: String
        let bytes: String
        /// Whether the fast path should answer every request of it itself.
        var fastPathAnswers = false
        var requests = 1
    }

    static let form = "application/x-www-form-urlencoded"

    static func post(
        _ body: String,
        auth: String?,
        contentType: String? = form,
        path: String = "/oauth2/introspect",
        extra: [String] = [],
        version: String = "HTTP/1.1"
    ) -> String {
        var lines = ["POST \(path) \(version)", "Host: tokend.test"]
        if let auth { lines.append("Authorization: \(auth)") }
        if let contentType { lines.append("Content-Type: \(contentType)") }
        lines += extra
        lines.append("Content-Length: \(body.utf8.count)")
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    /// A forward-auth request: the gateway's credentials in `X-Tokend-Authorization`, the end
    /// user's in `Authorization`.
    static func authz(_ target: String = "/authz", gateway: String?, authorization: String?, method: String = "GET", body: String = "") -> String {
        var lines = ["\(method) \(target) HTTP/1.1", "Host: tokend.test"]
        if let gateway { lines.append("X-Tokend-Authorization: \(gateway)") }
        if let authorization { lines.append("Authorization: \(authorization)") }
        if !body.isEmpty { lines.append("Content-Length: \(body.utf8.count)") }
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    static func corpus(rs: Caller, restricted: Caller, issuer: Caller, live: String, revoked: String, unknown: String) -> [Item] {
        let token = "token=\(live)"
        let chunked = [
            "POST /oauth2/introspect HTTP/1.1", "Host: tokend.test", "Authorization: \(rs.basic)", "Content-Type: \(form)",
            "Transfer-Encoding: chunked",
        ].joined(separator: "\r\n") + "\r\n\r\n"
        func chunk(_ s: String) -> String { String(s.utf8.count, radix: 16) + "\r\n" + s + "\r\n" }
        let long = "token=" + String(repeating: "A", count: 9000)
        return [
            Item(name: "active", bytes: post(token, auth: rs.basic), fastPathAnswers: true),
            Item(
                name: "client_secret_post",
                bytes: post("\(token)&client_id=\(formEncode(rs.id))&client_secret=\(formEncode(rs.secret))", auth: nil),
                fastPathAnswers: true
            ),
            Item(name: "revoked", bytes: post("token=\(revoked)", auth: rs.basic), fastPathAnswers: true),
            Item(name: "malformed token", bytes: post("token=not-a-token", auth: rs.basic), fastPathAnswers: true),
            Item(name: "unknown token", bytes: post("token=\(unknown)", auth: rs.basic), fastPathAnswers: true),
            Item(name: "token hint", bytes: post("\(token)&token_type_hint=refresh_token", auth: rs.basic), fastPathAnswers: true),
            Item(name: "no token", bytes: post("token_type_hint=access_token", auth: rs.basic)),
            Item(name: "empty body", bytes: post("", auth: rs.basic)),
            Item(name: "wrong secret", bytes: post(token, auth: basicAuthorization(id: rs.id, secret: rs.secret + "x"))),
            Item(name: "unknown client", bytes: post(token, auth: basicAuthorization(id: "nobody", secret: rs.secret))),
            Item(name: "no credentials", bytes: post(token, auth: nil)),
            Item(name: "Bearer instead of Basic", bytes: post(token, auth: "Bearer \(live)")),
            Item(name: "malformed Basic", bytes: post(token, auth: "Basic !!!")),
            Item(name: "Basic and client_secret", bytes: post("\(token)&client_id=rs&client_secret=\(formEncode(rs.secret))", auth: rs.basic)),
            Item(name: "repeated token", bytes: post("\(token)&\(token)", auth: rs.basic)),
            Item(name: "bad percent-encoding", bytes: post("token=%zz", auth: rs.basic)),
            Item(name: "text/plain", bytes: post(token, auth: rs.basic, contentType: "text/plain")),
            Item(name: "no content type", bytes: post(token, auth: rs.basic, contentType: nil)),
            Item(name: "content type with charset", bytes: post(token, auth: rs.basic, contentType: form + "; charset=UTF-8"), fastPathAnswers: true),
            Item(name: "content type in capitals", bytes: post(token, auth: rs.basic, contentType: form.uppercased()), fastPathAnswers: true),
            Item(name: "Accept: JSON", bytes: post(token, auth: rs.basic, extra: ["Accept: application/json"]), fastPathAnswers: true),
            Item(
                name: "JWT weighed below JSON",
                bytes: post(token, auth: rs.basic, extra: ["Accept: application/token-introspection+jwt;q=0.5, application/json"]),
                fastPathAnswers: true
            ),
            Item(name: "caller without the introspect role", bytes: post(token, auth: issuer.basic)),
            Item(name: "audience-restricted caller", bytes: post(token, auth: restricted.basic), fastPathAnswers: true),
            Item(name: "chunked", bytes: chunked + chunk("token=") + chunk(live) + "0\r\n\r\n", fastPathAnswers: true),
            Item(name: "chunked past the fast path's limit", bytes: chunked + chunk(long) + "0\r\n\r\n"),
            Item(name: "chunked with a trailer", bytes: chunked + chunk(token) + "0\r\nX-Trailer: 1\r\n\r\n"),
            Item(name: "query string", bytes: post(token, auth: rs.basic, path: "/oauth2/introspect?token=x")),
            Item(name: "trailing slash", bytes: post(token, auth: rs.basic, path: "/oauth2/introspect/")),
            Item(name: "Connection: close", bytes: post(token, auth: rs.basic, extra: ["Connection: close"])),
            Item(name: "Connection: keep-alive", bytes: post(token, auth: rs.basic, extra: ["Connection: keep-alive"]), fastPathAnswers: true),
            Item(name: "Expect: 100-continue", bytes: post(token, auth: rs.basic, extra: ["Expect: 100-continue"])),
            Item(name: "HTTP/1.0", bytes: post(token, auth: rs.basic, version: "HTTP/1.0"), fastPathAnswers: true),
            Item(name: "body over 64 KiB", bytes: post("token=" + String(repeating: "A", count: 70_000), auth: rs.basic)),
            Item(name: "body over the fast path's limit", bytes: post(long, auth: rs.basic)),
            Item(name: "GET", bytes: "GET /oauth2/introspect HTTP/1.1\r\nHost: tokend.test\r\n\r\n"),
            Item(name: "body shorter than its length", bytes: post(token, auth: rs.basic).replacingOccurrences(of: "Content-Length: ", with: "Content-Length: 9")),
            Item(name: "not HTTP", bytes: "NOT HTTP AT ALL\r\n\r\n"),
            Item(name: "header without a colon", bytes: post(token, auth: rs.basic, extra: ["No colon here"])),
            Item(
                name: "pipelined: fast, read, fast",
                bytes: post(token, auth: rs.basic) + post("token=\(unknown)", auth: rs.basic) + post(token, auth: rs.basic),
                fastPathAnswers: true,
                requests: 3
            ),
            Item(
                name: "pipelined: read, router, read",
                bytes: post("token=\(unknown)", auth: rs.basic) + post("token_type_hint=x", auth: rs.basic) + post("token=\(revoked)", auth: rs.basic),
                requests: 3
            ),
            Item(
                name: "pipelined: fast, router, fast",
                bytes: post(token, auth: rs.basic) + post("", auth: rs.basic) + post(token, auth: rs.basic),
                requests: 3
            ),
            Item(name: "pipelined: three fast", bytes: String(repeating: post(token, auth: rs.basic), count: 3), fastPathAnswers: true, requests: 3),
            Item(name: "pipelined: then garbage", bytes: post(token, auth: rs.basic) + "GARBAGE\r\n\r\n", requests: 2),
            // Forward auth, with rs as the gateway.
            Item(name: "authz: allowed", bytes: authz(gateway: rs.basic, authorization: "Bearer \(live)"), fastPathAnswers: true),
            Item(name: "authz: scope held", bytes: authz("/authz?scope=read", gateway: rs.basic, authorization: "Bearer \(live)"), fastPathAnswers: true),
            Item(name: "authz: scope missing", bytes: authz("/authz?scope=read+write", gateway: rs.basic, authorization: "Bearer \(live)"), fastPathAnswers: true),
            Item(
                name: "authz: audience held",
                bytes: authz("/authz?audience=https%3A%2F%2Fb.example&page=2", gateway: rs.basic, authorization: "Bearer \(live)"),
                fastPathAnswers: true
            ),
            Item(name: "authz: audience missing", bytes: authz("/authz?audience=https://c.example", gateway: rs.basic, authorization: "Bearer \(live)"), fastPathAnswers: true),
            Item(name: "authz: empty query", bytes: authz("/authz?", gateway: rs.basic, authorization: "Bearer \(live)"), fastPathAnswers: true),
            Item(name: "authz: no bearer", bytes: authz(gateway: rs.basic, authorization: nil), fastPathAnswers: true),
            Item(name: "authz: Basic instead of Bearer", bytes: authz(gateway: rs.basic, authorization: rs.basic), fastPathAnswers: true),
            Item(name: "authz: empty bearer", bytes: authz(gateway: rs.basic, authorization: "Bearer"), fastPathAnswers: true),
            Item(name: "authz: bearer in capitals", bytes: authz(gateway: rs.basic, authorization: "BEARER \(live)"), fastPathAnswers: true),
            Item(name: "authz: malformed token", bytes: authz(gateway: rs.basic, authorization: "Bearer not-a-token"), fastPathAnswers: true),
            Item(name: "authz: POST with a body", bytes: authz(gateway: rs.basic, authorization: "Bearer \(live)", method: "POST", body: "a=b"), fastPathAnswers: true),
            Item(name: "authz: HEAD", bytes: authz(gateway: rs.basic, authorization: "Bearer \(live)", method: "HEAD"), fastPathAnswers: true),
            Item(name: "authz: DELETE", bytes: authz(gateway: rs.basic, authorization: "Bearer \(live)", method: "DELETE"), fastPathAnswers: true),
            Item(name: "authz: revoked", bytes: authz(gateway: rs.basic, authorization: "Bearer \(revoked)")),
            Item(name: "authz: unknown", bytes: authz(gateway: rs.basic, authorization: "Bearer \(unknown)")),
            Item(name: "authz: no gateway credentials", bytes: authz(gateway: nil, authorization: "Bearer \(live)")),
            Item(name: "authz: wrong gateway secret", bytes: authz(gateway: basicAuthorization(id: rs.id, secret: "x"), authorization: "Bearer \(live)")),
            Item(name: "authz: gateway without the role", bytes: authz(gateway: issuer.basic, authorization: "Bearer \(live)")),
            Item(name: "authz: audience-restricted gateway", bytes: authz(gateway: restricted.basic, authorization: "Bearer \(live)"), fastPathAnswers: true),
            Item(name: "authz: path below", bytes: authz("/authz/api/orders?scope=read", gateway: rs.basic, authorization: "Bearer \(live)")),
            Item(name: "authz: neighbour path", bytes: authz("/authzx", gateway: rs.basic, authorization: "Bearer \(live)")),
            Item(name: "authz: repeated scope", bytes: authz("/authz?scope=read&scope=read", gateway: rs.basic, authorization: "Bearer \(live)")),
            Item(name: "authz: bad percent-encoding", bytes: authz("/authz?scope=%zz", gateway: rs.basic, authorization: "Bearer \(live)")),
            Item(name: "authz: invalid scope", bytes: authz("/authz?scope=%22", gateway: rs.basic, authorization: "Bearer \(live)")),
            Item(name: "authz: fragment", bytes: authz("/authz#x", gateway: rs.basic, authorization: "Bearer \(live)")),
            Item(
                name: "authz: pipelined with introspection",
                bytes: authz(gateway: rs.basic, authorization: "Bearer \(live)") + post(token, auth: rs.basic) + authz(gateway: rs.basic, authorization: nil),
                fastPathAnswers: true,
                requests: 3
            ),
        ]
    }

    /// Sends `bytes` on a new connection, closes its sending side (unless not `halfClose`) and
    /// returns everything received until the server closes the connection.
    static func exchange(_ bytes: String, port: Int, halfClose: Bool = true) async throws -> String {
        try await withDeadline("an answer from port \(port)", .seconds(30)) {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: bytes))
                if halfClose { outbound.finish() }
                var received = ByteBuffer()
                do {
                    for try await chunk in inbound { received.writeImmutableBuffer(chunk) }
                } catch {
                    // A reset after the answers: what was received is the answer.
                }
                return String(buffer: received)
            }
        }
    }

    static func withoutDate(_ answer: String) -> String {
        answer.replacing(/\r\n[Dd]ate: [^\r]*/, with: "\r\nDate: -")
    }

    static func dates(_ answer: String) -> [Substring] {
        answer.matches(of: /\r\nDate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/).map { answer[$0.range] }
    }
}
