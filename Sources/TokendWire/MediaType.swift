/// Media type checks on a `Content-Type` value without building strings: the part before any
/// `;`, blanks around it ignored, compared without regard to ASCII letter case.
public enum MediaType {
    /// Whether `header` names the media type `expected` (given in lower case).
    public static func `is`(_ header: String?, _ expected: StaticString) -> Bool {
        guard var header else { return false }
        return header.withUTF8 { value in
            var start = 0
            var end = value.firstIndex(of: UInt8(ascii: ";")) ?? value.count
            while start < end && (value[start] == UInt8(ascii: " ") || value[start] == UInt8(ascii: "\t")) { start += 1 }
            while end > start && (value[end - 1] == UInt8(ascii: " ") || value[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
            guard end - start == expected.utf8CodeUnitCount else { return false }
            for i in 0..<(end - start) {
                var c = value[start + i]
                if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { c |= 0x20 }
                if c != expected.utf8Start[i] { return false }
            }
            return true
        }
    }
}
