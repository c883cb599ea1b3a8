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
        let a = ClientSecret.hash("same"), b = ClientSecret.hash("same")
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
