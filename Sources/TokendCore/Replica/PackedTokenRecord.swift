import Foundation

/// The claims that many cached tokens share (those of one client's tokens usually are the same):
/// `TokenCache` keeps one copy of each distinct set and points each record at it.
///
/// `users` and `pooled` are changed only under the owning cache's lock, and an instance never
/// leaves the cache (answers get copies of its strings), hence `@unchecked Sendable`.
final class SharedClaims: Hashable, @unchecked Sendable {
    let clientID: String
    let issuer: String
    let scope: String?
    let audiences: [String]
    let extra: [String: String]
    /// The heap bytes this instance and its strings take (`TokenCache`'s estimate).
    let bytes: Int
    /// Cached records pointing here, while `pooled`.
    var users = 0
    /// Whether the cache's pool holds this instance (else one record owns it alone).
    var pooled = false

    init(of record: TokenRecord) {
        clientID = record.clientID
        issuer = record.issuer
        scope = record.scope
        audiences = record.audiences
        extra = record.extra
        // The object: its header and seven stored properties (five of 16 or 8 bytes, two words).
        bytes =
            TokenCache.mallocSize(16 + 3 * MemoryLayout<String>.stride + 2 * MemoryLayout<Int>.stride + 3 * MemoryLayout<Int>.stride)
            + TokenCache.heapBytes(clientID) + TokenCache.heapBytes(issuer) + TokenCache.heapBytes(scope)
            + TokenCache.heapBytes(audiences) + TokenCache.heapBytes(extra)
    }

    static func == (a: SharedClaims, b: SharedClaims) -> Bool {
        a === b
            || (a.clientID == b.clientID && a.issuer == b.issuer && a.scope == b.scope && a.audiences == b.audiences
                && a.extra == b.extra)
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(clientID)
        hasher.combine(issuer)
        hasher.combine(scope)
        hasher.combine(audiences)
        hasher.combine(extra)
    }
}

/// What a `PackedTokenRecord` holds in fixed fields; the rest are bytes after it.
struct PackedRecordHeader {
    /// Bytes 16..<32 of the token hash (the cache's key holds bytes 0..<16).
    var hashTail: (UInt64, UInt64)
    var issuedAt: Double
    var expiresAt: Double
    var claims: SharedClaims
    /// This record's share of the cache's byte estimate (`TokenCache.bytes`).
    var bytes: Int32
    var hasNotBefore: Bool
    var hasConfirmation: Bool
}

/// One cached access-token record in a single allocation: the fixed fields, a reference to the
/// claims it shares with other records, and its own strings as bytes (`sub`, `username`, `jti`,
/// `grant_id`, `cnf`, and `nbf` when set). A `TokenRecord` of an access token takes about 260
/// bytes inline plus an allocation per string longer than 15 bytes; this takes the strings' bytes
/// plus about 60, with base64url identifiers (`jti`, `grant_id` as tokend makes them) stored as the
/// bytes they encode.
///
/// Strings are written as a LEB128 length word then the bytes: word 0 is nil; otherwise
/// `1 + (count << 1 | packed)`, `packed` meaning the bytes are the base64url decoding of the
/// string (used only when encoding them again gives the same string).
///
/// Its header is set before the cache publishes it and never changed after, hence
/// `@unchecked Sendable`: `TokenCache.get` unpacks outside its lock.
struct PackedTokenRecord: @unchecked Sendable {
    final class Storage: ManagedBuffer<PackedRecordHeader, UInt8> {}

    let storage: Storage

    var header: PackedRecordHeader {
        get { storage.header }
        nonmutating set { storage.header = newValue }
    }

    /// Packs `record` (an unrevoked access token's) with `claims`, which must equal its shared claims.
    static func make(_ record: TokenRecord, claims: SharedClaims) -> PackedTokenRecord {
        var tail: [UInt8] = []
        tail.reserveCapacity(128)
        if let notBefore = record.notBefore {
            withUnsafeBytes(of: notBefore.timeIntervalSinceReferenceDate.bitPattern.littleEndian) { tail.append(contentsOf: $0) }
        }
        appendString(record.subject, to: &tail)
        appendString(record.username, to: &tail)
        appendString(record.jti, to: &tail)
        appendString(record.grantID, to: &tail)
        let confirmation = record.confirmation
        if let confirmation {
            appendString(confirmation.jkt, to: &tail)
            appendString(confirmation.x5tS256, to: &tail)
        }
        let words = record.hash.words
        let bytes = allocationBytes(tail: tail.count)
        let buffer = Storage.create(minimumCapacity: tail.count) { _ in
            PackedRecordHeader(
                hashTail: (words.2, words.3),
                issuedAt: record.issuedAt.timeIntervalSinceReferenceDate,
                expiresAt: record.expiresAt.timeIntervalSinceReferenceDate,
                claims: claims,
                bytes: Int32(clamping: bytes),
                hasNotBefore: record.notBefore != nil,
                hasConfirmation: confirmation != nil
            )
        }
        buffer.withUnsafeMutablePointerToElements { elements in
            tail.withUnsafeBufferPointer { elements.update(from: $0.baseAddress!, count: $0.count) }
        }
        return PackedTokenRecord(storage: unsafeDowncast(buffer, to: Storage.self))
    }

    /// What the allocation of a record with `tail` bytes takes from malloc: the object header,
    /// the fixed fields, the bytes.
    static func allocationBytes(tail: Int) -> Int {
        TokenCache.mallocSize(16 + MemoryLayout<PackedRecordHeader>.size + tail)
    }

    var expiresAt: Date { Date(timeIntervalSinceReferenceDate: header.expiresAt) }

    /// Whether this is the record of `hash`, whose first 16 bytes are the cache's key.
    func holds(_ hash: TokenHash) -> Bool {
        let words = hash.words
        return header.hashTail.0 == words.2 && header.hashTail.1 == words.3
    }

    /// The record again, as it was packed (`hash` is its own).
    func unpack(hash: TokenHash) -> TokenRecord {
        let header = self.header
        let claims = header.claims
        return storage.withUnsafeMutablePointerToElements { elements in
            // The tail's length is not stored: reading stops after the last field.
            var reader = Reader(base: elements)
            var notBefore: Date?
            if header.hasNotBefore { notBefore = Date(timeIntervalSinceReferenceDate: reader.double()) }
            let subject = reader.string()
            let username = reader.string()
            let jti = reader.string() ?? ""
            let grantID = reader.string() ?? ""
            var confirmation: Confirmation?
            if header.hasConfirmation { confirmation = Confirmation(jkt: reader.string(), x5tS256: reader.string()) }
            return TokenRecord(
                hash: hash, kind: .access, clientID: claims.clientID, subject: subject, username: username,
                scope: claims.scope, audiences: claims.audiences, issuer: claims.issuer,
                issuedAt: Date(timeIntervalSinceReferenceDate: header.issuedAt), notBefore: notBefore,
                expiresAt: Date(timeIntervalSinceReferenceDate: header.expiresAt),
                jti: jti, grantID: grantID, confirmation: confirmation, extra: claims.extra
            )
        }
    }

    // MARK: Strings

    static func appendString(_ string: String?, to tail: inout [UInt8]) {
        guard let string else { return appendWord(0, to: &tail) }
        let utf8 = Array(string.utf8)
        if utf8.count >= 8, let decoded = Base64URL.canonicalDecode(utf8) {
            appendWord(1 + (UInt64(decoded.count) << 1 | 1), to: &tail)
            tail.append(contentsOf: decoded)
        } else {
            appendWord(1 + UInt64(utf8.count) << 1, to: &tail)
            tail.append(contentsOf: utf8)
        }
    }

    static func appendWord(_ word: UInt64, to tail: inout [UInt8]) {
        var word = word
        while word >= 0x80 {
            tail.append(UInt8(word & 0x7F) | 0x80)
            word >>= 7
        }
        tail.append(UInt8(word))
    }

    struct Reader {
        var base: UnsafeMutablePointer<UInt8>
        var offset = 0

        mutating func byte() -> UInt8 {
            defer { offset += 1 }
            return base[offset]
        }

        mutating func word() -> UInt64 {
            var word: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = byte()
                word |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return word }
                shift += 7
            }
        }

        mutating func double() -> Double {
            var bits: UInt64 = 0
            for index in 0..<8 { bits |= UInt64(byte()) << (8 * UInt64(index)) }
            return Double(bitPattern: bits)
        }

        mutating func string() -> String? {
            let word = word()
            guard word > 0 else { return nil }
            let count = Int((word - 1) >> 1)
            let bytes = UnsafeBufferPointer(start: base + offset, count: count)
            offset += count
            if (word - 1) & 1 == 1 {
                var out: [UInt8] = []
                Base64URL.encode(bytes, into: &out)
                return String(decoding: out, as: UTF8.self)
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}

extension Base64URL {
    /// The bytes that `utf8` (unpadded base64url) encodes, only if `encode` of them gives `utf8`
    /// back exactly (no padding, no stray bits in the last character); nil otherwise.
    static func canonicalDecode(_ utf8: [UInt8]) -> [UInt8]? {
        guard utf8.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for c in utf8 {
            guard let value = sextet(c) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero, or two strings would decode to the same bytes.
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }

    private static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x41...0x5A: return c - 0x41
        case 0x61...0x7A: return c - 0x61 + 26
        case 0x30...0x39: return c - 0x30 + 52
        case 0x2D: return 62
        case 0x5F: return 63
        default: return nil
        }
    }
}
