import Crypto

/// SHA-256 of an opaque token: the only form in which a token is stored, looked up or logged.
///
/// The 32 bytes are kept inline as four words (in memory order, i.e. the digest's byte order), so
/// a hash costs no allocation, hashes and compares as four integers and takes 32 bytes in a
/// dictionary key: hashing a token, caching a record and loading the revocation log all make many.
public struct TokenHash: Sendable, Hashable, CustomStringConvertible {
    private var w0: UInt64
    private var w1: UInt64
    private var w2: UInt64
    private var w3: UInt64

    /// The 32 bytes, in order (allocates an array: for SQL parameters and such, not hot paths).
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a token hash is 32 bytes")
        self.init(unchecked: bytes)
    }

    public init?(validating bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.init(unchecked: bytes)
    }

    private init(unchecked bytes: [UInt8]) {
        (w0, w1, w2, w3) = bytes.withUnsafeBytes { Self.words($0) }
    }

    /// The hash whose 32 bytes are `raw` (which must hold exactly 32).
    public init?(rawBytes raw: UnsafeRawBufferPointer) {
        guard raw.count == 32 else { return nil }
        (w0, w1, w2, w3) = Self.words(raw)
    }

    @inline(__always)
    private static func words(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        (
            raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
            raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        )
    }

    /// Hashes a raw token. Call this at the edge, as soon as the token is read.
    public init(token: some StringProtocol) {
        var string = String(token)
        self = string.withUTF8 { Self(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// Hashes a raw token given as its UTF-8 bytes.
    public init(utf8 token: UnsafeRawBufferPointer) {
        var hasher = SHA256()
        hasher.update(bufferPointer: token)
        let digest = hasher.finalize()
        (w0, w1, w2, w3) = digest.withUnsafeBytes { Self.words($0) }
    }

    /// The bytes are SHA-256 output, uniform already: one word is as good a hash-table key as
    /// four (the table's `Hasher` is seeded per process regardless), at a quarter of the
    /// hashing. Equality still compares all 32 bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(w0)
    }

    public static func == (a: TokenHash, b: TokenHash) -> Bool {
        (a.w0 ^ b.w0) | (a.w1 ^ b.w1) | (a.w2 ^ b.w2) | (a.w3 ^ b.w3) == 0
    }

    /// Calls `body` with the 32 bytes, without copying them to the heap.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try Swift.withUnsafeBytes(of: &copy) { try body($0) }
    }

    /// The four words in memory order (for compact tables: `TokenCache` keys on the first two).
    var words: (UInt64, UInt64, UInt64, UInt64) { (w0, w1, w2, w3) }

    init(words: (UInt64, UInt64, UInt64, UInt64)) {
        (w0, w1, w2, w3) = words
    }

    /// Bytes 0..<8 and 8..<16 as little-endian integers (what the Bloom filter's positions use).
    var firstWordLE: UInt64 { UInt64(littleEndian: w0) }
    var secondWordLE: UInt64 { UInt64(littleEndian: w1) }

    public var hex: String { withUnsafeBytes { $0.hexString } }
    /// A short, non-reversible prefix of the hash for log lines.
    public var description: String { String(hex.prefix(12)) }
}

extension TokenHash {
    /// Parses 64 hex digits.
    public init?(hex: String) {
        var hex = hex
        guard let parsed = hex.withUTF8({ Self(hexUTF8: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    /// Parses 64 hex digits given as ASCII bytes.
    public init?(hexUTF8 utf8: UnsafeRawBufferPointer) {
        guard utf8.count == 64 else { return nil }
        var raw: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let ok = Swift.withUnsafeMutableBytes(of: &raw) { out -> Bool in
            var bad: UInt8 = 0
            for i in 0..<32 {
                let hi = Self.nibble(utf8[2 * i])
                let lo = Self.nibble(utf8[2 * i + 1])
                bad |= (hi | lo) & 0xF0
                out[i] = hi << 4 | (lo & 0x0F)
            }
            return bad == 0
        }
        guard ok else { return nil }
        (w0, w1, w2, w3) = raw
    }

    /// The value of a hex digit, or 0xFF.
    @inline(__always)
    private static func nibble(_ c: UInt8) -> UInt8 {
        switch c {
        case 0x30...0x39: return c &- 0x30
        case 0x61...0x66: return c &- 0x61 &+ 10
        case 0x41...0x46: return c &- 0x41 &+ 10
        default: return 0xFF
        }
    }
}
