/// RFC 4648 §5 base64url without padding.
public enum Base64URL {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        encode(bytes, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the encoding of `bytes` to `out` (a JWS is built this way without intermediate strings).
    public static func encode(_ bytes: some Collection<UInt8>, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + (bytes.count * 4 + 2) / 3)
        alphabet.withUnsafeBufferPointer { table in
            var iterator = bytes.makeIterator()
            while let b0 = iterator.next() {
                let b1 = iterator.next()
                let b2 = iterator.next()
                out.append(table[Int(b0 >> 2)])
                out.append(table[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
                guard let b1 else { return }
                out.append(table[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
                guard let b2 else { return }
                out.append(table[Int(b2 & 0x3F)])
            }
        }
    }

    static func isAlphabet(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
    }
}
