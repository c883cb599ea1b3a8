import Foundation
import Testing

@testable import TokendCore

@Suite struct OpaqueTokenTests {
    @Test func generatedTokensHaveThePrefixAnd43Base64URLCharacters() {
        for kind in [TokenKind.access, .refresh] {
            let token = OpaqueToken.generate(kind)
            #expect(token.hasPrefix(kind.prefix))
            #expect(token.count == 7 + 43)
            #expect(OpaqueToken.isWellFormed(token))
        }
    }

    @Test func generatedTokensDiffer() {
        let tokens = Set((0..<1000).map { _ in OpaqueToken.generate(.access) })
        #expect(tokens.count == 1000)
    }

    @Test func malformedTokensAreRejected() {
        #expect(!OpaqueToken.isWellFormed("tkd_at_short"))
        #expect(!OpaqueToken.isWellFormed("xyz_at_" + String(repeating: "a", count: 43)))
        #expect(!OpaqueToken.isWellFormed("tkd_at_" + String(repeating: "=", count: 43)))
        #expect(!OpaqueToken.isWellFormed(String(repeating: "a", count: 10_000)))
    }

    @Test func tokenHashIsSHA256AndRoundTripsThroughHex() {
        // SHA-256("abc")
        let hash = TokenHash(token: "abc")
        #expect(hash.hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(TokenHash(hex: hash.hex) == hash)
        #expect(TokenHash(hex: "zz") == nil)
    }
}

@Suite struct ClientSecretTests {
    @Test func verifiesOnlyTheRightSecret() {
        let secret = ClientSecret.generate()
        let hashed = ClientSecret.hash(secret)
        #expect(ClientSecret.verify(secret, salt: hashed.salt, hash: hashed.hash))
        #expect(!ClientSecret.verify(secret + "x", salt: hashed.salt, hash: hashed.hash))
        #expect(!ClientSecret.verify(secret, salt: Randomness.bytes(16), hash: hashed.hash))
    }

    @Test func saltsDiffer() {
        let a = ClientSecret.hash("same")
        let b = ClientSecret.hash("same")
        #expect(a.salt != b.salt)
        #expect(a.hash != b.hash)
    }

    @Test func constantTimeEqualityComparesContent() {
        #expect(constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(constantTimeEqual("admin", "admin"))
        #expect(!constantTimeEqual("admin", "admiN"))
    }
}

@Suite struct TokenHashTests {
    @Test func bytesRoundTripAndHashingIsByValue() {
        let bytes = (0..<32).map { UInt8($0 * 7 + 1) }
        let hash = TokenHash(bytes: bytes)
        #expect(hash.bytes == bytes)
        #expect(TokenHash(validating: bytes) == hash)
        #expect(TokenHash(validating: Array(bytes.prefix(31))) == nil)
        #expect(hash.hex == bytes.hexString)
        #expect(TokenHash(hex: hash.hex.uppercased()) == hash)
        #expect(TokenHash(hex: String(hash.hex.dropLast()) + "g") == nil)
        #expect(TokenHash(hex: hash.hex + "00") == nil)
        #expect(Set([hash, TokenHash(bytes: bytes), TokenHash(token: "x")]).count == 2)
        #expect(hash.withUnsafeBytes { Array($0) } == bytes)
    }

    @Test func tokenHashingAgreesForEveryStringForm() {
        let token = "tkd_at_" + String(repeating: "A", count: 43)
        let hash = TokenHash(token: token)
        #expect(TokenHash(token: token[...]) == hash)
        #expect(TokenHash(token: String(decoding: Array(token.utf8), as: UTF8.self)) == hash)
        #expect(hash.description.count == 12)
        #expect(hash.hex.hasPrefix(hash.description))
    }
}

@Suite struct Base64URLTests {
    /// The table-driven encoder agrees with Foundation's base64, translated to RFC 4648 §5 and
    /// unpadded, for every length up to 100 (every tail case) and random contents.
    @Test func agreesWithFoundationForEveryLength() {
        for length in 0...100 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255) }
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == expected, "length \(length)")
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
        var out = Array("x.".utf8)
        Base64URL.encode([UInt8]("hi".utf8)[...], into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "x.aGk")
    }
}
