import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SwiftProtobuf
import TokendCore
import TokendProto
import TokendWire

/// `tokend.v1.RevocationService/Watch` as a Connect server stream on the public listener
/// (connectrpc.com/docs/protocol, "Streaming"): `Content-Type: application/connect+proto` or
/// `application/connect+json`, one enveloped `WatchRequest` (gzip when `Connect-Content-Encoding:
/// gzip` and the envelope says so), then `200` and enveloped `RevocationEvent`s until the stream
/// ends with an end-of-stream envelope: `{}`, or `{"error":{"code","message"}}` with the Connect
/// code of the error table (`out_of_range`, `unavailable`, `unauthenticated`, …). Responses are
/// not compressed. An unsupported content type is `415`, as for unary calls.
struct ConnectWatchController: Sendable {
    let tokend: Tokend

    enum Codec: Sendable {
        case proto, json
        var contentType: String { self == .proto ? "application/connect+proto" : "application/connect+json" }
    }

    func register(on router: Router<TokendRequestContext>) {
        router.post("/tokend.v1.RevocationService/Watch") { request, context -> Response in
            let codec: Codec
            if MediaType.is(request.headers[.contentType], "application/connect+proto") {
                codec = .proto
            } else if MediaType.is(request.headers[.contentType], "application/connect+json") {
                codec = .json
            } else {
                var headers = HTTPFields()
                headers[.acceptPost] = "application/connect+proto, application/connect+json"
                throw ConnectError(
                    .unknown,
                    "Watch is a server stream: use application/connect+proto or application/connect+json",
                    status: .unsupportedMediaType,
                    headers: headers
                )
            }
            // Everything from here on is answered inside the stream, as the protocol asks.
            let prepared: Result<(Tokend_V1_WatchRequest, ClientRecord), TokendError>
            do {
                let body = try await RequestBody.collect(request)
                let message = try Self.decode(body, codec: codec, encoding: request.headers[.connectContentEncoding])
                let caller = try await ClientAuthentication.authenticateBasic(request, with: tokend.authenticator, context: context)
                prepared = .success((message, caller))
            } catch let error as TokendError {
                prepared = .failure(error)
            }
            var headers = HTTPFields()
            headers[.contentType] = codec.contentType
            headers[.cacheControl] = "no-store"
            let replica = tokend.replica
            let channel = context.channel
            return Response(
                status: .ok,
                headers: headers,
                body: ResponseBody { writer in
                    var failure: TokendError?
                    switch prepared {
                    case .failure(let error): failure = error
                    case .success(let (message, caller)):
                        do {
                            // Written from this task: the connection's back-pressure reaches the
                            // subscription's bounded buffer, and a client that stops reading is cut off.
                            // A caller that closes its connection ends the subscription at once, not
                            // when the next entry fails to write.
                            try await replica.watch(
                                after: message.afterSeq, caller: caller, callerGone: { await PeerGoneHandler.gone(on: channel) }
                            ) { entry in
                                try await writer.write(try Self.envelope(Tokend_V1_RevocationEvent(entry), codec: codec))
                            }
                        } catch let error as TokendError {
                            failure = error
                        } catch is CancellationError {
                            return
                        }
                    }
                    try await writer.write(Self.endOfStream(failure))
                    try await writer.finish(nil)
                }
            )
        }
    }

    /// One enveloped message (`ConnectEnvelope`): flags 0, big-endian length, the message in the codec.
    static func envelope(_ message: some Message, codec: Codec) throws -> ByteBuffer {
        let bytes: [UInt8] =
            codec == .proto ? try message.serializedBytes() : try message.jsonUTF8Bytes(options: ConnectCodec.jsonEncoding)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(5 + bytes.count)
        buffer.writeBytes(ConnectEnvelope.prefix(flags: 0, length: bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    /// The end-of-stream envelope (flags 0x02): `{}` or the error as Connect JSON.
    static func endOfStream(_ error: TokendError?) -> ByteBuffer {
        var json = JSONWriter(capacity: 128)
        json.beginObject()
        if let error {
            let connect = ConnectError(error)
            json.fieldKey("error")
            json.beginObject()
            json.field("code", string: connect.code.rawValue)
            json.field("message", string: connect.message)
            json.endObject()
        }
        json.endObject()
        var buffer = ByteBuffer()
        buffer.reserveCapacity(5 + json.bytes.count)
        buffer.writeBytes(ConnectEnvelope.prefix(flags: ConnectEnvelope.endOfStream, length: json.bytes.count))
        buffer.writeBytes(json.bytes)
        return buffer
    }

    /// The request: exactly one envelope holding a `WatchRequest` (gzip-compressed when its flags say so).
    static func decode(_ body: ByteBuffer, codec: Codec, encoding: String?) throws -> Tokend_V1_WatchRequest {
        guard let (flags, message) = body.withUnsafeReadableBytes({ ConnectEnvelope.single($0) }),
            var payload = body.getSlice(at: body.readerIndex + message.lowerBound, length: message.count)
        else {
            throw TokendError.invalidRequest("the request must be one Connect envelope holding a WatchRequest")
        }
        if flags & ConnectEnvelope.compressed != 0 {
            guard encoding?.lowercased() == "gzip" else {
                throw TokendError.invalidRequest("a compressed envelope needs Connect-Content-Encoding: gzip")
            }
            // Past 64 KiB inflated: tooLarge (resource_exhausted), as for a unary body.
            guard let inflated = try RequestBody.gunzip(payload) else {
                throw TokendError.invalidRequest("the request envelope is not valid gzip")
            }
            payload = inflated
        }
        do {
            switch codec {
            case .proto: return try Tokend_V1_WatchRequest(serializedBytes: Array(payload.readableBytesView))
            case .json: return try Tokend_V1_WatchRequest(jsonUTF8Bytes: Array(payload.readableBytesView), options: ConnectCodec.jsonDecoding)
            }
        } catch {
            throw TokendError.invalidRequest("the request is not a valid tokend.v1.WatchRequest")
        }
    }
}

extension HTTPField.Name {
    static let connectContentEncoding = HTTPField.Name("Connect-Content-Encoding")!
}
