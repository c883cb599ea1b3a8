/// A strictly parsed `application/x-www-form-urlencoded` body (HTML URL-encoded form, as RFC 6749
/// Appendix B uses it): `+` is a space, `%XX` a byte, names and values must be UTF-8. A parameter
/// given twice is an error (RFC 6749 §3.1, RFC 7662 §2.1: "parameters MUST NOT be included more than once").
///
/// The parser works on contiguous bytes, not a generic collection, so that it is compiled once and
/// optimised in this module.
public struct FormBody: Sendable {
    private(set) var fields: [String: String]
    /// Every value of the parameters that may repeat, in order.
    private(set) var repeated: [String: [String]] = [:]

    /// Parses the bytes of a form body.
    public init(bytes: UnsafeRawBufferPointer) throws(WireError) {
        try self.init(bytes: bytes, only: nil)
    }

    /// Parses the bytes of a form body in which the parameters named in `repeatable` may occur
    /// more than once (RFC 8707 `resource`); `values(_:)` has all of them.
    public init(bytes: UnsafeRawBufferPointer, repeatable: Set<String>) throws(WireError) {
        try self.init(bytes: bytes, only: nil, repeatable: repeatable)
    }

    /// Parses only the parameters named in `names`, as strictly as `init(bytes:)` does, and
    /// ignores every other one (which may then be repeated, empty or malformed): for a query
    /// string that mostly belongs to someone else, such as the original request's query that
    /// Envoy's HTTP `ext_authz` appends after `/authz`.
    public init(bytes: UnsafeRawBufferPointer, only names: Set<String>) throws(WireError) {
        try self.init(bytes: bytes, only: Optional(names))
    }

    private init(bytes: UnsafeRawBufferPointer, only names: Set<String>?, repeatable: Set<String> = []) throws(WireError) {
        fields = Dictionary(minimumCapacity: 4)
        let count = bytes.count
        var start = 0
        while start < count {
            var end = start
            while end < count && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var equals = start
                while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                let rawName = UnsafeRawBufferPointer(rebasing: bytes[start..<equals])
                let name: String
                if let names {
                    // A name that does not decode cannot be one of `names`.
                    guard let decoded = try? Self.decode(rawName), names.contains(decoded) else {
                        start = end + 1
                        continue
                    }
                    name = decoded
                } else {
                    name = try Self.decode(rawName)
                }
                let value = equals < end ? try Self.decode(UnsafeRawBufferPointer(rebasing: bytes[(equals + 1)..<end])) : ""
                guard !name.isEmpty else { throw .emptyParameterName }
                if repeatable.contains(name) {
                    repeated[name, default: []].append(value)
                } else {
                    guard fields[name] == nil else { throw .repeatedParameter(name) }
                }
                fields[name] = value
            }
            start = end + 1
        }
    }

    public subscript(name: String) -> String? { fields[name] }

    /// Every value of a parameter named in `repeatable` (empty when absent); for any other
    /// parameter, its one value.
    public func values(_ name: String) -> [String] {
        repeated[name] ?? fields[name].map { [$0] } ?? []
    }

    /// Decodes one form component: `+` to space, `%XX` to a byte, then UTF-8 validation.
    static func decode(_ component: UnsafeRawBufferPointer) throws(WireError) -> String {
        // The common case (a token, a client id): nothing to unescape, validate in place.
        if !component.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) {
            guard let string = String(validating: component, as: UTF8.self) else { throw .invalidUTF8 }
            return string
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(component.count)
        var index = 0
        let count = component.count
        while index < count {
            let byte = component[index]
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard index + 2 < count, let hi = hexValue(component[index + 1]), let lo = hexValue(component[index + 2]) else {
                    throw .malformedPercentEncoding
                }
                bytes.append(hi << 4 | lo)
                index += 2
            default:
                bytes.append(byte)
            }
            index += 1
        }
        guard let string = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        return string
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}
