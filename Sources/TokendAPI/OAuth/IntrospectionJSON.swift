import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TokendCore
import TokendProto
import TokendWire

/// RFC 7662 §2.2 response members for an introspection result, written with `JSONWriter` (no
/// `Encodable`, no `JSONEncoder`) and handed over as a `ByteBuffer`: the body of every answer on
/// the memory path. Members come in sorted key order, extra claims among them; a registered claim
/// is never shadowed by an extra one (extra claims with a registered name are not written).
enum IntrospectionJSON {
    /// RFC 7662 §2.2: an inactive token gets `active` and nothing else.
    static let inactive = ByteBuffer(string: #"{"active":false}"#)

    static func body(_ result: IntrospectionResult) -> ByteBuffer {
        guard case .active(let t) = result else { return inactive }
        var json = JSONWriter(capacity: 320)
        json.beginObject()
        // Extra claims, sorted, merged into the registered members' (sorted) order.
        let extras = t.extra.isEmpty ? [] : t.extra.filter { !TokenIssuer.reservedClaims.contains($0.key) }.sorted { $0.key < $1.key }
        var nextExtra = 0
        func flushExtras(before key: String) {
            while nextExtra < extras.count, key.isEmpty || extras[nextExtra].key < key {
                json.member(extras[nextExtra].key, string: extras[nextExtra].value)
                nextExtra += 1
            }
        }
        flushExtras(before: "active")
        json.field("active", bool: true)
        flushExtras(before: "aud")
        if !t.audiences.isEmpty { json.field("aud", strings: t.audiences) }
        flushExtras(before: "client_id")
        json.field("client_id", string: t.clientID)
        flushExtras(before: "cnf")
        if let cnf = t.confirmation, !cnf.isEmpty {
            json.fieldKey("cnf")
            json.beginObject()
            if let jkt = cnf.jkt, !jkt.isEmpty { json.field("jkt", string: jkt) }
            if let x5t = cnf.x5tS256, !x5t.isEmpty { json.field("x5t#S256", string: x5t) }
            json.endObject()
        }
        flushExtras(before: "exp")
        json.field("exp", int: Int64(t.expiresAt.timeIntervalSince1970))
        flushExtras(before: "iat")
        json.field("iat", int: Int64(t.issuedAt.timeIntervalSince1970))
        flushExtras(before: "iss")
        json.field("iss", string: t.issuer)
        flushExtras(before: "jti")
        json.field("jti", string: t.jti)
        flushExtras(before: "nbf")
        if let nbf = t.notBefore { json.field("nbf", int: Int64(nbf.timeIntervalSince1970)) }
        flushExtras(before: "scope")
        if let scope = t.scope { json.field("scope", string: scope) }
        flushExtras(before: "sub")
        if let sub = t.subject { json.field("sub", string: sub) }
        flushExtras(before: "token_type")
        if let type = t.tokenType { json.field("token_type", string: type) }
        flushExtras(before: "username")
        if let username = t.username { json.field("username", string: username) }
        flushExtras(before: "")  // the rest
        json.endObject()
        return ByteBuffer(bytes: json.bytes)
    }

    /// `Content-Type: application/json` and `Cache-Control: no-store`, built once.
    static let headers: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return headers
    }()

    /// `headers` and the `Content-Length` of a body of `contentLength` bytes.
    static func fields(contentLength: Int) -> HTTPFields {
        var fields = headers
        fields[.contentLength] = String(contentLength)
        return fields
    }

    /// The head of a `200` answer with `headers`, as `HTTPResponseEncoder` writes it, up to the
    /// value of `Content-Length`: written once, from `headers` (the byte path adds the length, the
    /// `Date` field and the body).
    static let okHead: [UInt8] = {
        var head = "HTTP/1.1 200 OK\r\n"
        for field in headers { head += "\(field.name.rawName): \(field.value)\r\n" }
        head += "\(HTTPField.Name.contentLength.rawName): "
        return Array(head.utf8)
    }()

    static func response(_ result: IntrospectionResult) -> Response {
        Response(status: .ok, headers: headers, body: .init(byteBuffer: body(result)))
    }
}
