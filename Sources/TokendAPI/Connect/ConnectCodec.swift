import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf
import TokendCore
import TokendProto
import TokendWire

/// Connect protocol unary calls (connectrpc.com/docs/protocol): decoding requests and encoding
/// responses for the `proto` and `json` codecs, with optional gzip in both directions.
enum ConnectCodec: Sendable {
    case proto
    case json

    /// The RFC names (`client_id`) in answers; unknown members of requests skipped (`ConnectJSONOptions`).
    static let jsonEncoding = ConnectJSONOptions.encoding
    static let jsonDecoding = ConnectJSONOptions.decoding

    var contentType: String {
        switch self {
        case .proto: return "application/proto"
        case .json: return "application/json"
        }
    }

    /// Reads and decodes a unary request: content type, protocol version, size limit, gzip.
    static func decode<M: Message>(_ type: M.Type, from request: Request) async throws -> (M, ConnectCodec) {
        let contentType = request.headers[.contentType]
        let codec: ConnectCodec
        if MediaType.is(contentType, "application/proto") {
            codec = .proto
        } else if MediaType.is(contentType, "application/json") {
            codec = .json
        } else {
            let mediaType =
                (contentType ?? "").split(separator: ";").first
                .map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            var headers = HTTPFields()
            headers[.acceptPost] = "application/proto, application/json"
            throw ConnectError(
                .unknown,
                "unsupported content type \"\(mediaType.prefix(64))\": use application/proto or application/json",
                status: .unsupportedMediaType,
                headers: headers
            )
        }
        if let version = request.headers[.connectProtocolVersion], version != "1" {
            throw ConnectError(.invalidArgument, "unsupported Connect-Protocol-Version \"\(version.prefix(16))\"")
        }
        var body = try await RequestBody.collect(request)
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity":
            break
        case "gzip":
            guard let inflated = try RequestBody.gunzip(body) else {
                throw ConnectError(.invalidArgument, "request body is not valid gzip")
            }
            body = inflated
        case let other?:
            var headers = HTTPFields()
            headers[.connectAcceptEncoding] = "gzip"
            throw ConnectError(.unimplemented, "unsupported content encoding \"\(other.prefix(32))\": use gzip or identity", headers: headers)
        }
        do {
            switch codec {
            case .proto: return (try M(serializedBytes: body.readableBytesSpan), codec)
            case .json: return (try M(jsonUTF8Bytes: Array(body.readableBytesView), options: jsonDecoding), codec)
            }
        } catch {
            throw ConnectError(.invalidArgument, "request body is not a valid \(M.protoMessageName) in \(codec.contentType)")
        }
    }

    /// Encodes a unary response in the request's codec, gzipped when the caller accepts gzip.
    func response(_ message: some Message, for request: Request) throws -> Response {
        let bytes: [UInt8]
        switch self {
        case .proto: bytes = try message.serializedBytes()
        case .json: bytes = try message.jsonUTF8Bytes(options: Self.jsonEncoding)
        }
        var body = ByteBuffer(bytes: bytes)
        var headers = self == .proto ? Self.protoHeaders : Self.jsonHeaders
        if AcceptEncoding.admitsGzip(request.headers[.acceptEncoding]) {
            body = try body.compress(with: .gzip())
            headers[.contentEncoding] = "gzip"
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// The response headers of each codec without compression, built once.
    private static let protoHeaders = headers(for: .proto)
    private static let jsonHeaders = headers(for: .json)
    private static func headers(for codec: ConnectCodec) -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = codec.contentType
        headers[.cacheControl] = "no-store"
        headers[.vary] = "Accept-Encoding"
        return headers
    }
}

extension HTTPField.Name {
    static let connectProtocolVersion = HTTPField.Name("Connect-Protocol-Version")!
    static let connectAcceptEncoding = HTTPField.Name("Connect-Accept-Encoding")!
    static let acceptPost = HTTPField.Name("Accept-Post")!
    static let pragma = HTTPField.Name("Pragma")!
}
