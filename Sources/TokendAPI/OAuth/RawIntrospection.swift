import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

/// The byte path: a form introspection or an `/authz` request answered from memory straight from
/// the connection's bytes, in front of the HTTP/1 decoder, when one read brought exactly one whole request of a
/// strict subset of HTTP/1.1 (`RawRequest`); other bytes go on, unchanged, to the decoder, and
/// from there to `IntrospectionFastPathHandler` and the router. It skips what a request costs
/// between the bytes and `IntrospectionFastPath` (the parser's callbacks, NIO's and then
/// HTTPTypes' head, the URL parse of the target, the response's conversion and encoding), about a
/// quarter of the fast path's CPU per request (docs/BENCHMARKS.md, issue 14).
///
/// It decides with `IntrospectionFastPath`'s own code on the `HTTPRequest` that the decoder and
/// `HTTP1ToHTTPServerCodec` would have made of the same bytes, and writes the answer as the
/// encoder writes `IntrospectionFastPathHandler`'s; `IntrospectionFastPathTests` compares the
/// three paths byte for byte. A miss, or a request the fast path leaves to the router, is handed
/// on already parsed: its parts are fired from `HTTP1ToHTTPServerCodec`'s context, as the decoder
/// and the codec would have made them, to `IntrospectionFastPathHandler` (which reads a miss's
/// record) and on to the router. The decoder, between messages before and after, never sees it.
/// Without token memory (`TOKEND_CACHE_ENTRIES=0`) it answers nothing itself and only does that.
///
/// The decoder tells the encoder each request's method, so that the answer to a `HEAD` (or
/// `CONNECT`) goes out without its body; the encoder takes one method off that queue per answer.
/// A request handed on parsed is never in the queue, so bytes for the decoder that arrive while
/// such a request still awaits its answer are held (and the connection is not read meanwhile)
/// until that answer has passed the encoder: otherwise a pipelined `HEAD` would take the place of
/// the earlier answer, which would then lose its body.
///
/// It sits between `HTTPResponseEncoder` and the request decoder: inbound it sees the bytes,
/// outbound the `HTTPServerResponsePart`s on their way to the encoder, whose ends it counts, so
/// that it answers only while every request it handed on has been answered (answers keep their
/// order). Once it has handed on bytes that were not exactly whole requests, the decoder may hold
/// part of one, and it steps aside for the rest of the connection (it cannot tell when the decoder
/// is at a message boundary again; a client that sends one request outside the subset, or one
/// split over two reads, is then served by the decoder's path, which answers the same). Its own
/// answers are written from the encoder's context, past the encoder: nothing removes the encoder
/// from a connection's pipeline before the connection closes (the listener configures no HTTP
/// upgrade), and a write on a removed context fails as on a closed channel rather than reaching
/// the socket.
final class RawIntrospectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Puts a byte path for `fastPath` right after the pipeline's `HTTPResponseEncoder`, if it has
    /// one and an `HTTP1ToHTTPServerCodec`.
    static func install(_ fastPath: IntrospectionFastPath, context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        guard let encoder = try? pipeline.context(handlerType: HTTPResponseEncoder.self),
            let codec = try? pipeline.context(handlerType: HTTP1ToHTTPServerCodec.self)
        else { return }
        try? pipeline.addHandler(RawIntrospectionHandler(fastPath, encoder: encoder, codec: codec), position: .after(encoder.handler))
    }

    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let fastPath: IntrospectionFastPath
    /// Released when this handler leaves the pipeline.
    private var encoder: ChannelHandlerContext?
    /// Whole requests are handed on from here, parsed. Released with `encoder`.
    private var codec: ChannelHandlerContext?
    /// Requests handed on whose answer has not ended yet.
    private var due = 0
    /// Bytes were handed on that were not exactly whole requests: the decoder may hold part of
    /// one, so nothing is answered here on this connection any more.
    private var handingOn = false
    /// Bytes for the decoder (and what arrived after them) held until every request handed on
    /// parsed has been answered; `read` held back meanwhile.
    private var holding = false
    private var held: [DeferredInbound] = []
    private var readHeldBack = false
    /// The connection has closed.
    private var inactive = false
    private var needsFlush = false
    private var date = HTTPDate()
    private var remembered: RememberedCredential?

    init(_ fastPath: IntrospectionFastPath, encoder: ChannelHandlerContext, codec: ChannelHandlerContext) {
        self.fastPath = fastPath
        self.encoder = encoder
        self.codec = codec
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if handingOn {
            handOn(data, context: context)
            return
        }
        let bytes = unwrapInboundIn(data)
        guard let request = RawRequest(bytes) else {
            // Until now every request went on parsed: `due` counts those awaiting their answers.
            handingOn = true
            holding = due > 0
            handOn(data, context: context)
            return
        }
        let start = ContinuousClock.now
        if due == 0, fastPath.hasMemory, let encoder, context.channel.isWritable, let kind = fastPath.kind(of: request.head),
            case .answer(let answer) = fastPath.answer(
                kind,
                head: request.head,
                body: request.body,
                source: context.channel.remoteAddress?.ipAddress,
                remembered: &remembered
            )
        {
            write(answer, encoder: encoder)
            fastPath.record(kind, method: request.head.method, status: answer.status.code, clientID: answer.clientID, duration: .now - start)
            fastPath.bytesCounter.value.add(1, ordering: .relaxed)
            return
        }
        // One whole request for the handlers after the codec: counted, so that answers here wait
        // for its answer.
        due += 1
        guard let codec else {
            context.fireChannelRead(data)
            return
        }
        codec.fireChannelRead(NIOAny(HTTPRequestPart.head(request.head)))
        if request.body.readableBytes > 0 { codec.fireChannelRead(NIOAny(HTTPRequestPart.body(request.body))) }
        codec.fireChannelRead(NIOAny(HTTPRequestPart.end(nil)))
        fastPath.parsedCounter.value.add(1, ordering: .relaxed)
    }

    /// Bytes for the decoder: now, or once the requests handed on parsed are answered.
    private func handOn(_ data: NIOAny, context: ChannelHandlerContext) {
        if holding {
            held.append(.read(data))
        } else {
            context.fireChannelRead(data)
        }
    }

    /// Hands the decoder what was held for it, in order, and reads again.
    private func releaseHeld(context: ChannelHandlerContext) {
        guard holding else { return }
        holding = false
        let items = held
        held = []
        for item in items {
            // Something released may close the connection (a shutdown when nothing is in progress).
            if inactive { break }
            switch item {
            case .read(let data): context.fireChannelRead(data)
            case .event(let event): context.fireUserInboundEventTriggered(event)
            case .error(let error): context.fireErrorCaught(error)
            }
        }
        guard !inactive else { return }
        context.fireChannelReadComplete()
        if readHeldBack {
            readHeldBack = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if holding {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Nobody to answer: what was held is dropped, as the connection's unread bytes are.
        inactive = true
        holding = false
        held = []
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if holding {
            held.append(.error(error))
        } else {
            context.fireErrorCaught(error)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Nothing removes it before the connection closes; if something did, what it holds goes on.
        releaseHeld(context: context)
        encoder = nil
        codec = nil
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A half-close or a shutdown may end the connection at once: answers written here go first.
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        if holding {
            held.append(.event(event))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var answered = false
        if case .end = unwrapOutboundIn(data), due > 0 {
            due -= 1
            answered = due == 0
        }
        context.write(data, promise: promise)
        if answered, holding {
            // After the write that is under way, not inside it.
            context.eventLoop.assumeIsolated().execute {
                self.releaseHeld(context: context)
            }
        }
    }

    /// `answer` as the encoder writes `IntrospectionFastPathHandler`'s (status line, the fields in
    /// order, `Date` last, the body).
    private func write(_ answer: IntrospectionFastPath.Answer, encoder: ChannelHandlerContext) {
        var out = encoder.channel.allocator.buffer(capacity: 192 + answer.body.readableBytes)
        if case .introspectionJSON = answer.shape {
            // The same bytes as below, the head up to the length written once (`okHead`).
            out.writeBytes(IntrospectionJSON.okHead)
            out.writeString(String(answer.body.readableBytes))
            out.writeStaticString("\r\nDate: ")
            out.writeString(date.current())
            out.writeStaticString("\r\n\r\n")
            out.writeImmutableBuffer(answer.body)
            encoder.write(NIOAny(IOData.byteBuffer(out)), promise: nil)
            needsFlush = true
            return
        }
        out.writeStaticString("HTTP/1.1 ")
        let status = HTTPResponseStatus(statusCode: answer.status.code, reasonPhrase: answer.status.reasonPhrase)
        out.writeString(String(status.code))
        out.writeStaticString(" ")
        out.writeString(status.reasonPhrase)
        out.writeStaticString("\r\n")
        var fields = answer.fields
        fields[.date] = date.current()
        for field in fields {
            out.writeString(field.name.rawName)
            out.writeStaticString(": ")
            out.writeString(field.value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        out.writeImmutableBuffer(answer.body)
        encoder.write(NIOAny(IOData.byteBuffer(out)), promise: nil)
        needsFlush = true
    }
}

/// What a handler received while it held back a connection's input, for later, in order.
enum DeferredInbound {
    case read(NIOAny)
    case event(Any)
    case error(any Error)
}

/// One complete request of the strict subset: `POST /oauth2/introspect HTTP/1.1` with exactly one
/// `Content-Length` and a body of exactly that many bytes ending the buffer, or `GET /authz` (with
/// a query of RFC 3986 query characters but `#`, or none) `HTTP/1.1` with neither `Content-Length`
/// nor a body; header lines of token-character names and visible-ASCII values (spaces or tabs
/// inside, none at the ends), at most 32; no `Transfer-Encoding`, `Upgrade`, `Expect`, `Cookie` or
/// `Proxy-Connection`, `Connection` only `keep-alive`. What the decoder and `HTTP1ToHTTPServerCodec` would
/// make of it: the target as the path, the first `Host` as the authority and not among the fields.
struct RawRequest {
    var head: HTTPRequest
    var body: ByteBuffer

    static let introspection: [UInt8] = Array("POST /oauth2/introspect HTTP/1.1\r\n".utf8)
    static let authz: [UInt8] = Array("GET /authz".utf8)
    static let version: [UInt8] = Array(" HTTP/1.1\r\n".utf8)
    static let maximumFields = 32

    init?(_ buffer: ByteBuffer) {
        let parsed: (HTTPRequest, Int)? = buffer.withUnsafeReadableBytes { bytes in
            Self.parse(bytes)
        }
        guard let (head, bodyStart) = parsed,
            let body = buffer.getSlice(at: buffer.readerIndex + bodyStart, length: buffer.readableBytes - bodyStart)
        else { return nil }
        self.head = head
        self.body = body
    }

    /// The head and where the body starts; `nil` unless the bytes are one whole request of the subset.
    private static func parse(_ bytes: UnsafeRawBufferPointer) -> (HTTPRequest, Int)? {
        let count = bytes.count
        let method: HTTPRequest.Method
        let target: String
        var i: Int
        if starts(bytes, with: introspection, at: 0) {
            method = .post
            target = "/oauth2/introspect"
            i = introspection.count
        } else if starts(bytes, with: authz, at: 0) {
            method = .get
            i = authz.count
            if i < count, bytes[i] == UInt8(ascii: "?") {
                i += 1
                while i < count, isQueryCharacter(bytes[i]) { i += 1 }
            }
            guard starts(bytes, with: version, at: i) else { return nil }
            target = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[4..<i]), as: UTF8.self)
            i += version.count
        } else {
            return nil
        }
        var fields = HTTPFields()
        var authority: String?
        var length: Int?
        var seen = 0
        while true {
            guard i + 1 < count else { return nil }
            if bytes[i] == 13 {
                guard bytes[i + 1] == 10 else { return nil }
                i += 2
                break
            }
            seen += 1
            guard seen <= maximumFields else { return nil }
            let nameStart = i
            while i < count, isTokenCharacter(bytes[i]) { i += 1 }
            guard i < count, i > nameStart, bytes[i] == UInt8(ascii: ":") else { return nil }
            let nameEnd = i
            i += 1
            while i < count, bytes[i] == 32 || bytes[i] == 9 { i += 1 }
            let valueStart = i
            while i < count, (bytes[i] >= 0x21 && bytes[i] <= 0x7E) || bytes[i] == 32 || bytes[i] == 9 { i += 1 }
            let valueEnd = i
            guard i + 1 < count, bytes[i] == 13, bytes[i + 1] == 10 else { return nil }
            if valueEnd > valueStart, bytes[valueEnd - 1] == 32 || bytes[valueEnd - 1] == 9 { return nil }
            i += 2
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameEnd]), as: UTF8.self)
            let value = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd]), as: UTF8.self)
            guard let fieldName = HTTPField.Name(name) else { return nil }
            switch fieldName {
            case .contentLength:
                guard length == nil, !value.isEmpty, value.utf8.count <= 5, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
                length = Int(value)
            case .transferEncoding, .upgrade, .expect, .cookie:
                return nil
            case .connection:
                guard value.lowercased() == "keep-alive" else { return nil }
            default:
                // llhttp reads `Proxy-Connection` as `Connection` (`close` ends the connection there).
                if fieldName.canonicalName == "proxy-connection" { return nil }
            }
            if authority == nil, fieldName.canonicalName == "host" {
                authority = value
                continue
            }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        switch method {
        case .post: guard let length, count - i == length else { return nil }
        default: guard length == nil, count == i else { return nil }
        }
        return (HTTPRequest(method: method, scheme: "http", authority: authority, path: target, headerFields: fields), i)
    }

    private static func starts(_ bytes: UnsafeRawBufferPointer, with prefix: [UInt8], at offset: Int) -> Bool {
        guard bytes.count - offset >= prefix.count else { return false }
        for j in 0..<prefix.count where bytes[offset + j] != prefix[j] { return false }
        return true
    }

    /// RFC 3986 `query` characters (`pchar`, `/`, `?`), `%` included as is.
    private static func isQueryCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "$"),
            UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"),
            UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"),
            UInt8(ascii: "?"), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }

    /// RFC 9110 `tchar`.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
