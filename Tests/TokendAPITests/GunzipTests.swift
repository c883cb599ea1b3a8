import CompressNIO
import NIOCore
import Testing

@testable import TokendAPI

/// `Gunzip`: exactly one whole gzip member, at most the limit once inflated. (The endpoints' answers
/// to each outcome are `PublicConnectTests`'; `Tests/Fuzz/gzip.swift` checks it against RFC 1952.)
@Suite struct GunzipTests {
    private func inflate(_ bytes: [UInt8], limit: Int = 64 * 1024) -> Gunzip.Outcome {
        Gunzip.inflate(ByteBuffer(bytes: bytes), maximumSize: limit)
    }

    private func member(_ text: [UInt8]) throws -> [UInt8] {
        Array(try gzip(text).readableBytesView)
    }

    @Test func aWholeMemberInflates() throws {
        let text = Array("hello, tokend".utf8)
        #expect(inflate(try member(text)) == .inflated(ByteBuffer(bytes: text)))
        #expect(inflate(try member([])) == .inflated(ByteBuffer()))
    }

    /// Cut short by any number of bytes, the empty message's member too. (Found by the fuzz target:
    /// the empty member without its last byte was read as the empty message, since the 8 bytes it
    /// then ends with are zeros, the CRC-32 and length of nothing.)
    @Test func aMemberCutShortAnywhereIsInvalid() throws {
        for text in [[], Array("hello, tokend".utf8), [UInt8](repeating: 0, count: 300)] {
            let whole = try member(text)
            for cut in 1...whole.count {
                let outcome = inflate(Array(whole.dropLast(cut)))
                #expect(outcome == .invalid, "\(text.count) bytes, \(cut) cut: \(outcome)")
            }
        }
    }

    @Test func anythingAfterTheMemberIsInvalid() throws {
        let whole = try member(Array("one".utf8))
        for extra in [[0], whole, Array(whole.suffix(8)), [0x1F, 0x8B]] {
            #expect(inflate(whole + extra) == .invalid, "\(extra)")
        }
    }

    @Test func aWrongTrailerOrHeaderIsInvalid() throws {
        let whole = try member(Array("hello, tokend".utf8))
        for index in [0, 1, 2, 3, whole.count - 8, whole.count - 5, whole.count - 4, whole.count - 1] {
            var bytes = whole
            bytes[index] ^= 0x40
            #expect(inflate(bytes) == .invalid, "byte \(index) flipped")
        }
        #expect(inflate(Array("not gzip at all".utf8)) == .invalid)
    }

    @Test func theLimitIsExactlyTheLimit() throws {
        let limit = 1000
        let atLimit = [UInt8](repeating: 7, count: limit)
        #expect(inflate(try member(atLimit), limit: limit) == .inflated(ByteBuffer(bytes: atLimit)))
        #expect(inflate(try member(atLimit + [7]), limit: limit) == .tooLarge)
        #expect(inflate(try member([UInt8](repeating: 0, count: 16 << 20)), limit: limit) == .tooLarge)
    }
}
