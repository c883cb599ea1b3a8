import Foundation
import Testing

@testable import TokendCore

private let now = Date(timeIntervalSince1970: 1_800_000_000)

private func record(
    hash: TokenHash = TokenHash(token: UUID().uuidString),
    clientID: String = "orders-gateway-eu1",
    subject: String? = "user:3f1c9a52-6f0e-4d7e-9b1a-0c2d4e6f8a9b",
    username: String? = "alice@example.com",
    jti: String = "Zm9vYmFyYmF6cXV4MTIzNA",
    grantID: String = "Z3JhbnQtaWRlbnRpZmllcg",
    notBefore: Date? = nil,
    confirmation: TokendCore.Confirmation? = nil
) -> TokenRecord {
    TokenRecord(
        hash: hash, kind: .access, clientID: clientID, subject: subject, username: username,
        scope: "openid orders:read", audiences: ["https://api.example.com/orders", "billing"],
        issuer: "https://auth.example.com", issuedAt: now.addingTimeInterval(-0.25), notBefore: notBefore,
        expiresAt: now.addingTimeInterval(3600.5), jti: jti, grantID: grantID, confirmation: confirmation,
        extra: ["tenant": "acme-corp-emea", "ünïcode": "✓"]
    )
}

@Suite struct PackedTokenRecordTests {
    /// Every field comes back as it went in, whichever way each string was stored.
    @Test(arguments: [
        record(),
        record(subject: nil, username: nil, notBefore: now.addingTimeInterval(-10), confirmation: TokendCore.Confirmation(jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")),
        record(confirmation: TokendCore.Confirmation(jkt: nil, x5tS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")),
        record(confirmation: TokendCore.Confirmation(jkt: nil, x5tS256: nil)),
        // Not packed as base64url: too short, a length no encoding has (9), stray bits in the last
        // character (10 characters: 60 bits, the last 4 must be 0), padding, other characters.
        record(jti: "abc", grantID: "abcdefghi"),
        record(jti: "AAAAAAAAAB", grantID: "AAAAAAAAAA"),
        record(jti: "Zm9vYmFy==", grantID: "has space in it"),
        record(jti: "", grantID: "ⓤⓝⓘⓒⓞⓓⓔ-long-enough"),
        record(subject: String(repeating: "s", count: 300), jti: String(repeating: "A", count: 200)),
    ])
    func aPackedRecordUnpacksToTheSameRecord(_ original: TokenRecord) {
        let packed = PackedTokenRecord.make(original, claims: SharedClaims(of: original))
        #expect(packed.unpack(hash: original.hash) == original)
        #expect(packed.holds(original.hash))
        let cache = TokenCache(capacity: 10)
        cache.put(original, now: now)
        #expect(cache.get(original.hash, now: now) == original)
    }

    @Test func base64urlIdentifiersAreStoredAsTheBytesTheyEncode() {
        #expect(Base64URL.canonicalDecode(Array("Zm9vYmFyYmF6cXV4MTIzNA".utf8))?.count == 16)
        #expect(Base64URL.canonicalDecode(Array("AAAAAAAAAB".utf8)) == nil)
        #expect(Base64URL.canonicalDecode(Array("AAAAAAAAAA".utf8)) == [UInt8](repeating: 0, count: 7))
        #expect(Base64URL.canonicalDecode(Array("abcde".utf8)) == nil)
        #expect(Base64URL.canonicalDecode(Array("ab+d".utf8)) == nil)
        // 12 base64url characters are stored as 9 bytes; with one character outside the alphabet,
        // as the 12 they are. Each after a one-byte length word.
        var tail: [UInt8] = []
        PackedTokenRecord.appendString("abcdefghijkl", to: &tail)
        #expect(tail.count == 1 + 9)
        tail = []
        PackedTokenRecord.appendString("abcdefghijk!", to: &tail)
        #expect(tail.count == 1 + 12)
    }

    /// The key is half the hash: a record is found only under its whole hash.
    @Test func aHashSharingTheKeysHalfIsNotTheSameToken() {
        let bytes = (0..<32).map { UInt8($0) }
        var other = bytes
        other[31] ^= 1
        let cached = record(hash: TokenHash(bytes: bytes))
        let cache = TokenCache(capacity: 10)
        cache.put(cached, now: now)
        #expect(cache.get(TokenHash(bytes: other), now: now) == nil)
        cache.remove(TokenHash(bytes: other))
        #expect(cache.get(cached.hash, now: now) == cached)
    }

    /// Claims are kept once per distinct set, for as long as a cached record uses them.
    @Test func sharedClaimsArePooledOnceAndReleasedWithTheirLastRecord() {
        let cache = TokenCache(capacity: 1_000)
        let gateway = (0..<300).map { _ in record() }
        let billing = (0..<200).map { _ in record(clientID: "billing") }
        for entry in gateway + billing { cache.put(entry, now: now) }
        #expect(cache.count == 500 && cache.pool.count == 2)
        for entry in billing { cache.remove(entry.hash) }
        #expect(cache.pool.count == 1)
        // Every record still answers with its own claims.
        for entry in gateway { #expect(cache.get(entry.hash, now: now)?.clientID == "orders-gateway-eu1") }
        #expect(cache.removeExpired(now: now.addingTimeInterval(7200)) == 300)
        #expect(cache.count == 0 && cache.pool.count == 0 && cache.bytes == TokenCache.tableBytes(capacity: 768) + cache.pool.tableBytes)
    }

    /// Past the pool's limit, records own their claims and the estimate counts them per record.
    @Test func claimsBeyondThePoolsLimitAreOwnedByTheirRecord() {
        let cache = TokenCache(capacity: 100_000, memoryLimit: .max)
        for index in 0..<TokenCache.poolLimit { cache.put(record(clientID: "client-\(index)"), now: now) }
        #expect(cache.pool.count == TokenCache.poolLimit)
        // 16,384 entries fill 32,768 buckets to half: one more does not grow the table.
        let extra = record(clientID: "one-more-client-with-a-long-identifier")
        let before = cache.bytes
        cache.put(extra, now: now)
        #expect(cache.pool.count == TokenCache.poolLimit && cache.get(extra.hash, now: now) == extra)
        let packed = PackedTokenRecord.make(extra, claims: SharedClaims(of: extra))
        #expect(cache.bytes == before + Int(packed.header.bytes) + SharedClaims(of: extra).bytes)
        cache.remove(extra.hash)
        #expect(cache.bytes == before)
    }
}
