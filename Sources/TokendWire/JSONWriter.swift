/// A small JSON writer into an array of bytes: objects, string/integer/boolean members and arrays
/// of strings, with RFC 8259 string escaping (`"` and `\` escaped, control characters as
/// `\b \f \n \r \t` or `\u00XX`, everything else, non-ASCII included, written as UTF-8).
public struct JSONWriter {
    /// The JSON written so far.
    public private(set) var bytes: [UInt8]
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Writes `"key":` for a key that needs no escaping (a registered member name), in one write.
    public mutating func fieldKey(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        append(key)
        append("\":")
        needsComma = false
    }

    /// Writes `"key":` followed by `json`, a complete JSON value the caller vouches for (a nested
    /// object written by another `JSONWriter`).
    public mutating func field(_ key: StaticString, json: some Sequence<UInt8>) {
        fieldKey(key)
        bytes.append(contentsOf: json)
        needsComma = true
    }

    public mutating func field(_ key: StaticString, string value: String) {
        fieldKey(key)
        writeString(value)
        needsComma = true
    }

    public mutating func field(_ key: StaticString, int value: Int64) {
        fieldKey(key)
        writeInt(value)
        needsComma = true
    }

    public mutating func field(_ key: StaticString, bool value: Bool) {
        fieldKey(key)
        append(value ? "true" : "false")
        needsComma = true
    }

    public mutating func field(_ key: StaticString, strings values: [String]) {
        fieldKey(key)
        writeStrings(values)
        needsComma = true
    }

    /// A member whose name is only known at run time (an extra claim), escaped as a string.
    public mutating func member(_ key: String, string value: String) {
        separate()
        writeString(key)
        bytes.append(UInt8(ascii: ":"))
        writeString(value)
        needsComma = true
    }

    private mutating func writeStrings(_ values: [String]) {
        bytes.append(UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            writeString(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func append(_ string: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
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
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            bytes.append(contentsOf: UnsafeRawBufferPointer(UnsafeMutableRawBufferPointer(rebasing: raw[i...])))
        }
    }

    /// A JSON string: runs of bytes that need no escape are copied as they are.
    private mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { chars in
            let utf8 = UnsafeRawBufferPointer(chars)
            bytes.append(UInt8(ascii: "\""))
            var runStart = 0
            for i in 0..<utf8.count {
                let byte = utf8[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < i { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                switch byte {
                case UInt8(ascii: "\""): append("\\\"")
                case UInt8(ascii: "\\"): append("\\\\")
                case 0x08: append("\\b")
                case 0x0C: append("\\f")
                case 0x0A: append("\\n")
                case 0x0D: append("\\r")
                case 0x09: append("\\t")
                default:
                    let hex: StaticString = "0123456789abcdef"
                    append("\\u00")
                    bytes.append(hex.utf8Start[Int(byte >> 4)])
                    bytes.append(hex.utf8Start[Int(byte & 0x0F)])
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[runStart...])) }
            bytes.append(UInt8(ascii: "\""))
        }
    }
}
