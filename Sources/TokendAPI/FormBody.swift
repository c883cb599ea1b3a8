import Foundation

/// A strictly parsed `application/x-www-form-urlencoded` body (HTML URL-encoded form, as RFC 6749
/// Appendix B uses it): `+` is a space, `%XX` a byte, names and values must be UTF-8. A parameter
/// given twice is an error (RFC 6749 §3.1, RFC 7662 §2.1: "parameters MUST NOT be included more than once").
public struct FormBody: Sendable, Equatable {
    public private(set) var fields: [String: String]

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(parsing bytes: some Collection<UInt8>) throws(ParseError) {
        fields = [:]
        guard !bytes.isEmpty else { return }
        for pair in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(parts[0])
            let value = parts.count > 1 ? try Self.decode(parts[1]) : ""
            guard !name.isEmpty else { throw ParseError(description: "malformed form body: empty parameter name") }
            guard fields[name] == nil else {
                throw ParseError(description: "parameter \"\(name.prefix(64))\" is included more than once")
            }
            fields[name] = value
        }
    }

    public subscript(name: String) -> String? { fields[name] }

    /// Decodes one form component: `+` to space, `%XX` to a byte, then UTF-8 validation.
    public static func decode(_ component: some Collection<UInt8>) throws(ParseError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(component.count)
        var index = component.startIndex
        while index != component.endIndex {
            let byte = component[index]
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                let first = component.index(after: index)
                guard first != component.endIndex, component.index(after: first) != component.endIndex,
                      let hi = hexValue(component[first]), let lo = hexValue(component[component.index(after: first)])
                else { throw ParseError(description: "malformed percent-encoding in form body") }
                bytes.append(hi << 4 | lo)
                index = component.index(after: first)
            default:
                bytes.append(byte)
            }
            index = component.index(after: index)
        }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw ParseError(description: "form body is not valid UTF-8")
        }
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
