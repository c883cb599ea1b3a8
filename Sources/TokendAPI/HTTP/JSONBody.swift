import Foundation
import HTTPTypes
import Hummingbird

/// Small JSON answers (errors, health, metadata) through `JSONEncoder`, sorted keys.
enum JSONBody {
    static func encode(_ object: some Encodable) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(object)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    static func response(_ object: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: encode(object)))
    }
}
