import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TokendCore
import TokendProto

/// RFC 7662 §2.2 response members for an introspection result, written straight into a
/// `ByteBuffer` with `JSONWriter` (no `Encodable`, no `JSONEncoder`): the body of every answer on
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
        return json.buffer
    }

    /// `Content-Type: application/json` and `Cache-Control: no-store`, built once.
    static let headers: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return headers
    }()

    static func response(_ result: IntrospectionResult) -> Response {
        Response(status: .ok, headers: headers, body: .init(byteBuffer: body(result)))
    }
}

/// A small JSON writer into a `ByteBuffer`: objects, string/integer/boolean members and arrays
/// of strings, with RFC 8259 string escaping (`"` and `\` escaped, control characters as
/// `\b \f \n \r \t` or `\u00XX`, everything else, non-ASCII included, written as UTF-8).
struct JSONWriter {
    private(set) var buffer: ByteBuffer
    private var needsComma = false

    init(capacity: Int = 256) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    mutating func beginObject() {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        buffer.writeInteger(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Writes `"key":` for a key that needs no escaping (a registered member name), in one write.
    mutating func fieldKey(_ key: StaticString) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
        needsComma = false
    }

    mutating func field(_ key: StaticString, string value: String) {
        fieldKey(key)
        writeString(value)
        needsComma = true
    }

    mutating func field(_ key: StaticString, int value: Int64) {
        fieldKey(key)
        writeInt(value)
        needsComma = true
    }

    mutating func field(_ key: StaticString, bool value: Bool) {
        fieldKey(key)
        buffer.writeStaticString(value ? "true" : "false")
        needsComma = true
    }

    mutating func field(_ key: StaticString, strings values: [String]) {
        fieldKey(key)
        writeStrings(values)
        needsComma = true
    }

    /// Writes `"key":`; the value written next needs no comma.
    mutating func key(_ key: String) {
        separate()
        writeString(key)
        buffer.writeInteger(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func member(_ key: String, string value: String) {
        self.key(key)
        writeString(value)
        needsComma = true
    }

    mutating func member(_ key: String, int value: Int64) {
        self.key(key)
        writeInt(value)
        needsComma = true
    }

    mutating func member(_ key: String, bool value: Bool) {
        self.key(key)
        buffer.writeStaticString(value ? "true" : "false")
        needsComma = true
    }

    mutating func member(_ key: String, strings values: [String]) {
        self.key(key)
        writeStrings(values)
        needsComma = true
    }

    private mutating func writeStrings(_ values: [String]) {
        buffer.writeInteger(UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            writeString(value)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    private mutating func separate() {
        if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
    }

    private mutating func writeInt(_ value: Int64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var magnitude = value.magnitude
        withUnsafeMutableBytes(of: &digits) { raw in
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeMutableRawBufferPointer(rebasing: raw[i...])))
        }
    }

    /// A JSON string: runs of bytes that need no escape are copied as they are.
    private mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { chars in
            let utf8 = UnsafeRawBufferPointer(chars)
            buffer.writeInteger(UInt8(ascii: "\""))
            var runStart = 0
            for i in 0..<utf8.count {
                let byte = utf8[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < i { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x08: buffer.writeStaticString("\\b")
                case 0x0C: buffer.writeStaticString("\\f")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                default:
                    let hex: StaticString = "0123456789abcdef"
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(hex.utf8Start[Int(byte >> 4)])
                    buffer.writeInteger(hex.utf8Start[Int(byte & 0x0F)])
                }
            }
            if runStart < utf8.count { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart...])) }
            buffer.writeInteger(UInt8(ascii: "\""))
        }
    }
}
