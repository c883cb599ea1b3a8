import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOPosix
import Testing
@testable import TokendAPI
import TokendCore
import TokendTestSupport

/// The byte path (`RawIntrospectionHandler`): a form introspection answered from memory straight
/// from the connection's bytes when they are exactly one whole request of a strict subset of
/// HTTP/1.1; the rest goes on to the decoder. `IntrospectionFastPathTests` compares its answers with
/// the router's byte for byte (its corpus sends one request per connection, so the byte path sees
/// each first); these tests check which requests it takes and that answers keep their order.
@Suite struct RawIntrospectionTests {
    typealias Fast = IntrospectionFastPathTests

    /// What the decoder and `HTTP1ToHTTPServerCodec` make of the subset: the fields in order, the
    /// first `Host` as the authority, the body.
    @Test func readsAWholeRequestAsTheDecoderDoes() throws {
        let bytes = "POST /oauth2/introspect HTTP/1.1\r\nHost: a.test\r\nAuthorization: Basic cnM6cw==\r\n"
            + "content-type:application/x-www-form-urlencoded\r\nX-Two:  a b\r\nHost: b.test\r\nContent-Length: 7\r\n\r\ntoken=x"
        let request = try #require(RawRequest(ByteBuffer(string: bytes)))
        #expect(request.head.method == .post)
        #expect(request.head.path == "/oauth2/introspect")
        #expect(request.head.authority == "a.test")
        let fields = request.head.headerFields.map { "\($0.name.rawName)=\($0.value)" }
        #expect(fields == ["Authorization=Basic cnM6cw==", "content-type=application/x-www-form-urlencoded", "X-Two=a b", "Host=b.test", "Content-Length=7"])
        #expect(String(buffer: request.body) == "token=x")
    }

    /// `/authz` with its query as the path, no body.
    @Test func readsAForwardAuthRequest() throws {
        let bytes = "GET /authz?audience=https%3A%2F%2Fa.example&scope=read HTTP/1.1\r\nHost: a.test\r\nX-Tokend-Authorization: Basic cnM6cw==\r\n\r\n"
        let request = try #require(RawRequest(ByteBuffer(string: bytes)))
        #expect(request.head.method == .get)
        #expect(request.head.path == "/authz?audience=https%3A%2F%2Fa.example&scope=read")
        #expect(request.head.authority == "a.test")
        #expect(request.head.headerFields.map(\.name.rawName) == ["X-Tokend-Authorization"])
        #expect(request.body.readableBytes == 0)
        #expect(RawRequest(ByteBuffer(string: "GET /authz HTTP/1.1\r\n\r\n"))?.head.path == "/authz")
    }

    /// Anything outside the subset, or not exactly one whole request, is the decoder's.
    @Test(arguments: [
        ("a partial head", "POST /oauth2/introspect HTTP/1.1\r\nHost: a\r\nContent-Len"),
        ("a partial body", "POST /oauth2/introspect HTTP/1.1\r\nContent-Length: 9\r\n\r\ntoken=x"),
        ("two requests", Self.request + Self.request),
        ("bytes after the body", Self.request + "\r\n"),
        ("no Content-Length", "POST /oauth2/introspect HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("two Content-Lengths", "POST /oauth2/introspect HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a signed Content-Length", "POST /oauth2/introspect HTTP/1.1\r\nContent-Length: +7\r\n\r\ntoken=x"),
        ("Transfer-Encoding", "POST /oauth2/introspect HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("Expect", "POST /oauth2/introspect HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("Upgrade", "POST /oauth2/introspect HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("Cookie", "POST /oauth2/introspect HTTP/1.1\r\nCookie: a=b\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("Proxy-Connection", "POST /oauth2/introspect HTTP/1.1\r\nProxy-Connection: close\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("Connection: close", "POST /oauth2/introspect HTTP/1.1\r\nConnection: close\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("HTTP/1.0", "POST /oauth2/introspect HTTP/1.0\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("another path", "POST /oauth2/introspect/ HTTP/1.1\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a query", "POST /oauth2/introspect?a=b HTTP/1.1\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("another method", "PUT /oauth2/introspect HTTP/1.1\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a bare LF", "POST /oauth2/introspect HTTP/1.1\r\nHost: a\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a folded line", "POST /oauth2/introspect HTTP/1.1\r\nX-A: a\r\n b\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a space before the colon", "POST /oauth2/introspect HTTP/1.1\r\nX-A : a\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("trailing blanks", "POST /oauth2/introspect HTTP/1.1\r\nX-A: a \r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a non-ASCII value", "POST /oauth2/introspect HTTP/1.1\r\nX-A: é\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a control character", "POST /oauth2/introspect HTTP/1.1\r\nX-A: a\u{1}b\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("a field without a name", "POST /oauth2/introspect HTTP/1.1\r\n: a\r\nContent-Length: 7\r\n\r\ntoken=x"),
        ("/authz with a body", "GET /authz HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
        ("/authz with Content-Length: 0", "GET /authz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        ("/authz and bytes after it", "GET /authz HTTP/1.1\r\n\r\nx"),
        ("a path below /authz", "GET /authz/a HTTP/1.1\r\n\r\n"),
        ("/authz with a fragment", "GET /authz?a=b#c HTTP/1.1\r\n\r\n"),
        ("/authz with a space in its query", "GET /authz?a=b c HTTP/1.1\r\n\r\n"),
        ("/authz with a quote in its query", "GET /authz?a=\"b\" HTTP/1.1\r\n\r\n"),
        ("/authz by POST", "POST /authz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        ("33 fields", "POST /oauth2/introspect HTTP/1.1\r\n" + String(repeating: "X-A: a\r\n", count: 32) + "Content-Length: 7\r\n\r\ntoken=x"),
    ])
    func leavesTheRestToTheDecoder(_ case: (String, String)) {
        #expect(RawRequest(ByteBuffer(string: `case`.1)) == nil, "\(`case`.0)")
    }

    static let request = "POST /oauth2/introspect HTTP/1.1\r\nContent-Length: 7\r\n\r\ntoken=x"

    /// On a live listener: one whole request per write is answered from its bytes (an `/authz` one
    /// too); two in one write
    /// go to the decoder (and are answered in order there); a cache miss is handed on, and the hit
    /// after it, sent once the miss is answered, is answered from its bytes again.
    @Test(arguments: StoreKind.allCases)
    func answersWholeRequestsAndStepsAsideForTheRest(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (rs, hit) = try await Fast.callerAndLiveToken(h.services)
            let miss = Fast.post("token=tkd_at_" + String(repeating: "E", count: 43), auth: rs.basic)
            let fastPath = h.services.fastPath()
            try await publicListener(h.services, fastPath: fastPath).test(.live) { client in
                try await fastPath.untilReadingMisses()
                let port = try #require(client.port)
                _ = try await Fast.exchange(hit, port: port)  // caches the caller and the token

                var before = fastPath.answeredFromBytes
                let one = try await Fast.exchange(hit, port: port)
                #expect(one.hasPrefix("HTTP/1.1 200 OK\r\n") && one.contains(#"{"active":true,"#), "\(one)")
                #expect(fastPath.answeredFromBytes == before + 1)

                before = fastPath.answeredFromBytes
                let token = try #require(hit.components(separatedBy: "token=").last)
                let authz = try await Fast.exchange(Fast.authz(gateway: rs.basic, authorization: "Bearer \(token)"), port: port)
                #expect(authz.hasPrefix("HTTP/1.1 200 OK\r\n") && authz.contains("x-tokend-client-id: as\r\n"), "\(authz)")
                #expect(fastPath.answeredFromBytes == before + 1)

                before = fastPath.answeredFromBytes
                let two = try await Fast.exchange(hit + miss, port: port)
                let bodies = two.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix(15) }
                #expect(bodies == [#"{"active":true,"#, #"{"active":false"#], "\(two)")
                #expect(fastPath.answeredFromBytes == before)

                before = fastPath.answeredFromBytes
                let parsed = fastPath.handedOnParsed
                let turns = try await Self.inTurns([miss, hit, hit], port: port)
                #expect(turns.map { $0.components(separatedBy: "\r\n\r\n").last?.prefix(15) } == [#"{"active":false"#, #"{"active":true,"#, #"{"active":true,"#], "\(turns)")
                #expect(fastPath.answeredFromBytes == before + 2)
                // The miss was handed on parsed (the decoder never saw it); the two in one write went as bytes.
                #expect(fastPath.handedOnParsed == parsed + 1)
            }
        }
    }

    /// Without token memory the byte path answers nothing itself and hands every whole request of
    /// its subset on parsed: the answers are the router's alone, byte for byte (a live token read
    /// by the fast path, a never-issued one, a wrong secret, `/authz`), also in turns on one connection.
    @Test(arguments: StoreKind.allCases)
    func withoutMemoryHandsEveryRequestOnParsed(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let (rs, hit) = try await Fast.callerAndLiveToken(h.services)
            let token = try #require(hit.components(separatedBy: "token=").last)
            let requests = [
                hit,
                Fast.post("token=tkd_at_" + String(repeating: "F", count: 43), auth: rs.basic),
                Fast.post("token=\(token)", auth: "Basic " + Data("rs:wrong".utf8).base64EncodedString()),
                Fast.authz(gateway: rs.basic, authorization: "Bearer \(token)"),
                Fast.authz("/authz?scope=write", gateway: rs.basic, authorization: "Bearer \(token)"),
            ]
            let services = h.storeOnlyServices()
            let fastPath = services.fastPath()
            #expect(!fastPath.hasMemory)
            try await publicListener(services, fastPath: fastPath).test(.live) { fast in
                try await fastPath.untilReadingMisses()
                try await publicListener(services, fastPath: nil).test(.live) { plain in
                    let fastPort = try #require(fast.port)
                    let plainPort = try #require(plain.port)
                    for request in requests {
                        let expected = try await Fast.exchange(request, port: plainPort)
                        let got = try await Fast.exchange(request, port: fastPort)
                        #expect(!expected.isEmpty && Fast.withoutDate(got) == Fast.withoutDate(expected), "\(request)")
                    }
                    let expected = try await Self.inTurns(requests, port: plainPort)
                    let got = try await Self.inTurns(requests, port: fastPort)
                    #expect(got.count == requests.count && got.map(Fast.withoutDate) == expected.map(Fast.withoutDate), "\(got)")
                }
            }
            #expect(fastPath.answeredFromBytes == 0)
            #expect(fastPath.handedOnParsed == 2 * requests.count, "handed on parsed: \(fastPath.handedOnParsed)")
            #expect(fastPath.answered > 0, "the fast path read none of the misses")
        }
    }

    /// The decoder tells the encoder each request's method, and the encoder takes one off per
    /// answer to send a `HEAD`'s without its body; a request handed on parsed never told it. So a
    /// `HEAD` read while such a request awaits its answer waits until that answer has passed the
    /// encoder: the answer keeps its body, and the `HEAD`'s goes without (before, the `HEAD` took the
    /// earlier answer's place and that answer lost its body). NIO's own handlers, as the listener
    /// builds them, in an `EmbeddedChannel`, with a stand-in router that answers when told.
    @Test func aHeadBehindARequestHandedOnParsedWaitsForItsAnswer() async throws {
        try await withHarness(.sqlite) { h in
            let fastPath = h.services.fastPath()
            let router = StandInRouter()
            let channel = EmbeddedChannel()
            let pipeline = channel.pipeline.syncOperations
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false)
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(IntrospectionFastPathHandler(fastPath))
            try pipeline.addHandler(router)

            // Whole and of the subset, but without credentials: for the router, handed on parsed.
            try channel.writeInbound(ByteBuffer(string: Self.request))
            #expect(fastPath.handedOnParsed == 1)
            #expect(router.requests.map(\.method) == [.post])
            try channel.writeInbound(ByteBuffer(string: "HEAD /healthz HTTP/1.1\r\n\r\n"))
            channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            #expect(router.seen == ["POST"], "the HEAD or the half-close reached the router before the POST was answered")

            router.answer(body: "hello")
            channel.embeddedEventLoop.run()
            // What was held arrives in order: the HEAD, then the half-close.
            #expect(router.seen == ["POST", "HEAD", "inputClosed"])
            router.answer(body: "hello")
            var written = ""
            while let part = try channel.readOutbound(as: IOData.self) {
                guard case .byteBuffer(let bytes) = part else { continue }
                written += String(buffer: bytes)
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
            #expect(written == head + "hello" + head, "\(written)")
            #expect(try channel.finish().isClean)
        }
    }

    /// Records the requests that reach it; `answer` writes the oldest unanswered one's answer, its
    /// body withheld for a `HEAD` as Hummingbird does.
    final class StandInRouter: ChannelInboundHandler {
        typealias InboundIn = HTTPRequestPart
        typealias OutboundOut = HTTPResponsePart
        var requests: [HTTPRequest] = []
        /// The requests' methods and the events, in order.
        var seen: [String] = []
        private var answered = 0
        private var context: ChannelHandlerContext?

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
        func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = unwrapInboundIn(data) {
                requests.append(head)
                seen.append(head.method.rawValue)
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .inputClosed = event as? ChannelEvent { seen.append("inputClosed") }
        }

        func answer(body: String) {
            guard let context, answered < requests.count else { return }
            let method = requests[answered].method
            answered += 1
            context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: [.contentLength: String(body.utf8.count)]))), promise: nil)
            if method != .head { context.write(wrapOutboundOut(.body(ByteBuffer(string: body))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// Sends each request once the answer to the one before has arrived (whole: its head and
    /// `Content-Length` bytes of body), on one connection; the answers.
    static func inTurns(_ requests: [String], port: Int) async throws -> [String] {
        try await withDeadline("answers in turn from port \(port)", .seconds(30)) {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
            return try await channel.executeThenClose { inbound, outbound in
                var answers: [String] = []
                var received: [UInt8] = []
                var chunks = inbound.makeAsyncIterator()
                for request in requests {
                    try await outbound.write(ByteBuffer(string: request))
                    while true {
                        if let length = Self.whole(received) {
                            answers.append(String(decoding: received[..<length], as: UTF8.self))
                            received.removeFirst(length)
                            break
                        }
                        guard let chunk = try await chunks.next() else { return answers }
                        received += chunk.readableBytesView
                    }
                }
                return answers
            }
        }
    }

    /// The length of the first whole answer in `text`, if it has arrived.
    static func whole(_ bytes: [UInt8]) -> Int? {
        let separator = Array("\r\n\r\n".utf8)
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        let field = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
        let length = field.flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        let total = end + 4 + length
        return bytes.count >= total ? total : nil
    }
}
