import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf

/// Connect protocol unary calls (connectrpc.com/docs/protocol): decoding requests and encoding
/// responses for the `proto` and `json` codecs, with optional gzip in both directions.
enum ConnectCodec: Sendable {
    case proto
    case json

    static let maximumBodySize = 64 * 1024

    static let jsonEncoding: JSONEncodingOptions = {
        var options = JSONEncodingOptions()
        // The RFC names (`client_id`), as in proto/; protojson parsers accept either form.
        options.preserveProtoFieldNames = true
        return options
    }()

    static let jsonDecoding: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()

    var contentType: String {
        switch self {
        case .proto: return "application/proto"
        case .json: return "application/json"
        }
    }

    /// Reads and decodes a unary request: content type, protocol version, size limit, gzip.
    static func decode<M: Message>(_ type: M.Type, from request: Request) async throws -> (M, ConnectCodec) {
        let mediaType = (request.headers[.contentType] ?? "").split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let codec: ConnectCodec
        switch mediaType {
        case "application/proto": codec = .proto
        case "application/json": codec = .json
        default:
            var headers = HTTPFields()
            headers[.acceptPost] = "application/proto, application/json"
            throw ConnectError(
                .unknown, "unsupported content type \"\(mediaType.prefix(64))\": use application/proto or application/json",
                status: .unsupportedMediaType, headers: headers)
        }
        if let version = request.headers[.connectProtocolVersion], version != "1" {
            throw ConnectError(.invalidArgument, "unsupported Connect-Protocol-Version \"\(version.prefix(16))\"")
        }
        var body = try await request.body.collect(upTo: maximumBodySize)
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity":
            break
        case "gzip":
            do {
                body = try body.decompress(with: .gzip(), maxSize: maximumBodySize + 1)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw ConnectError(.resourceExhausted, "request body exceeds \(maximumBodySize) bytes", status: .contentTooLarge)
            } catch {
                throw ConnectError(.invalidArgument, "request body is not valid gzip")
            }
        case let other?:
            var headers = HTTPFields()
            headers[.connectAcceptEncoding] = "gzip"
            throw ConnectError(.unimplemented, "unsupported content encoding \"\(other.prefix(32))\": use gzip or identity", headers: headers)
        }
        let bytes = Array(body.readableBytesView)
        do {
            switch codec {
            case .proto: return (try M(serializedBytes: bytes), codec)
            case .json: return (try M(jsonUTF8Bytes: bytes, options: jsonDecoding), codec)
            }
        } catch {
            throw ConnectError(.invalidArgument, "request body is not a valid \(M.protoMessageName) in \(codec.contentType)")
        }
    }

    /// Encodes a unary response in the request's codec, gzipped when the caller accepts gzip.
    func response(_ message: some Message, for request: Request) throws -> Response {
        var bytes: [UInt8]
        switch self {
        case .proto: bytes = try message.serializedBytes()
        case .json: bytes = try message.jsonUTF8Bytes(options: Self.jsonEncoding)
        }
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        var body = ByteBuffer(bytes: bytes)
        if Self.acceptsGzip(request.headers[.acceptEncoding]) {
            body = try body.compress(with: .gzip())
            headers[.contentEncoding] = "gzip"
        }
        headers[.vary] = "Accept-Encoding"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    /// Whether an `Accept-Encoding` list admits gzip (a `q=0` entry refuses it).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let coding = parts.first, coding == "gzip" || coding == "x-gzip" else { continue }
            let refused = parts.dropFirst().contains { $0.replacingOccurrences(of: " ", with: "").hasPrefix("q=0") && !$0.contains(where: { "123456789".contains($0) }) }
            return !refused
        }
        return false
    }
}

extension HTTPField.Name {
    static let connectProtocolVersion = HTTPField.Name("Connect-Protocol-Version")!
    static let connectAcceptEncoding = HTTPField.Name("Connect-Accept-Encoding")!
    static let acceptPost = HTTPField.Name("Accept-Post")!
    static let pragma = HTTPField.Name("Pragma")!
}
