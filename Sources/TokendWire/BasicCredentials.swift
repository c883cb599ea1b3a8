/// The `Authorization: Basic` value of RFC 7617, with RFC 6749 §2.3.1's form-encoding of the client
/// id and secret.
public enum BasicCredentials {
    /// Parses the header's bytes: the scheme (`Basic` in any letter case) and the credentials
    /// separated by a space, blanks around the credentials ignored, strict base64 (RFC 4648 §4,
    /// padded), `id:secret` split at the first colon, each part form-decoded, the id not empty.
    ///
    /// Throws `WireError.notBasicScheme` for another scheme or no credentials at all, and a
    /// malformed-credentials error for the rest.
    public static func parse(_ header: UnsafeRawBufferPointer) throws(WireError) -> (clientID: String, secret: String) {
        let count = header.count
        var i = 0
        while i < count && header[i] == UInt8(ascii: " ") { i += 1 }
        let schemeStart = i
        while i < count && header[i] != UInt8(ascii: " ") { i += 1 }
        let scheme = UnsafeRawBufferPointer(rebasing: header[schemeStart..<i])
        // The credentials: everything after the space that ends the scheme.
        guard i + 1 < count, isBasic(scheme) else { throw .notBasicScheme }
        guard count - (i + 1) <= 2048 else { throw .malformedBasicCredentials }
        var start = i + 1
        var end = count
        while start < end && (header[start] == UInt8(ascii: " ") || header[start] == UInt8(ascii: "\t")) { start += 1 }
        while end > start && (header[end - 1] == UInt8(ascii: " ") || header[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
        let encoded = UnsafeRawBufferPointer(rebasing: header[start..<end])
        let credentials = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1536) { scratch -> (String, String)? in
            guard let decodedCount = Base64.decode(encoded, into: UnsafeMutableRawBufferPointer(scratch)) else { return nil }
            let decoded = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[..<decodedCount])
            guard let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
                let id = try? FormBody.decode(UnsafeRawBufferPointer(rebasing: decoded[..<colon])),
                let secret = try? FormBody.decode(UnsafeRawBufferPointer(rebasing: decoded[(colon + 1)...])),
                !id.isEmpty
            else { return nil }
            return (id, secret)
        }
        guard let credentials else { throw .malformedBasicCredentials }
        return credentials
    }

    /// `basic` in any letter case.
    private static func isBasic(_ scheme: UnsafeRawBufferPointer) -> Bool {
        guard scheme.count == 5 else { return false }
        var folded: UInt8 = 0
        for (byte, expected) in zip(scheme, "basic".utf8) { folded |= (byte | 0x20) ^ expected }
        return folded == 0
    }
}

/// RFC 4648 §4 base64 (standard alphabet, `=` padding required), decoding only.
enum Base64 {
    /// Decodes `input` into `output`; `nil` when it is not base64 or does not fit. As Foundation
    /// does, the unused low bits of the last character are not checked.
    static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        let count = input.count
        guard count % 4 == 0 else { return nil }
        guard count > 0 else { return 0 }
        var padding = 0
        if input[count - 1] == UInt8(ascii: "=") { padding += 1 }
        if input[count - 2] == UInt8(ascii: "=") { padding += 1 }
        let length = count / 4 * 3 - padding
        guard length <= output.count else { return nil }
        var out = 0
        var group = 0
        while group < count {
            let last = group + 4 == count
            var value: UInt32 = 0
            for j in 0..<4 {
                let c = input[group + j]
                let sextet: UInt8
                if last && j >= 4 - padding {
                    sextet = 0  // the padding positions checked above
                } else {
                    guard let v = Self.sextet(c) else { return nil }
                    sextet = v
                }
                value = value << 6 | UInt32(sextet)
            }
            let bytes = last ? 3 - padding : 3
            output[out] = UInt8(truncatingIfNeeded: value >> 16)
            if bytes > 1 { output[out + 1] = UInt8(truncatingIfNeeded: value >> 8) }
            if bytes > 2 { output[out + 2] = UInt8(truncatingIfNeeded: value) }
            out += bytes
            group += 4
        }
        return out
    }

    private static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
