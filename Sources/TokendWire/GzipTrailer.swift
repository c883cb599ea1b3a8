/// The end of a gzip member (RFC 1952 §2.3.1): the CRC-32 and the length (modulo 2^32) of the
/// uncompressed data, little-endian, in its last 8 bytes.
///
/// zlib checks them when it reaches them, but a stream cut short (even by only those 8 bytes)
/// inflates without an error as far as it goes, and zlib stops at the end of the first member,
/// leaving whatever follows unread. So a whole body is one whose every byte zlib read, and whose
/// last 8 bytes are the trailer of what it inflated (TokendAPI's `RequestBody.gunzip`).
public enum GzipTrailer {
    /// Whether `gzip` (a whole body: a 10-byte header at least, then the trailer) ends with the
    /// trailer of `inflated`.
    public static func ends(_ gzip: UnsafeRawBufferPointer, inflated: UnsafeRawBufferPointer) -> Bool {
        guard gzip.count >= 18 else { return false }
        let end = gzip.count
        func little(_ at: Int) -> UInt32 {
            UInt32(gzip[at]) | UInt32(gzip[at + 1]) << 8 | UInt32(gzip[at + 2]) << 16 | UInt32(gzip[at + 3]) << 24
        }
        return little(end - 4) == UInt32(truncatingIfNeeded: inflated.count) && little(end - 8) == crc32(inflated)
    }

    /// CRC-32 of ISO 3309 / ITU-T V.42 as gzip uses it (reflected polynomial 0xEDB88320).
    public static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
}
