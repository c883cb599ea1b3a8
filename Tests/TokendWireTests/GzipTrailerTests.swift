import Testing

@testable import TokendWire

/// `GzipTrailer`: what tells a whole gzip body from one cut short (see `RequestBody.gunzip`).
@Suite struct GzipTrailerTests {
    /// `gzip.compress(b"hello, tokend", mtime=0)` (Python).
    static let member: [UInt8] = [
        0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xCB, 0x48, 0xCD, 0xC9, 0xC9, 0xD7, 0x51,
        0x28, 0xC9, 0xCF, 0x4E, 0xCD, 0x4B, 0x01, 0x00, 0xB2, 0x81, 0x95, 0x00, 0x0D, 0x00, 0x00, 0x00,
    ]
    static let text = Array("hello, tokend".utf8)

    private func ends(_ gzip: [UInt8], _ inflated: [UInt8]) -> Bool {
        gzip.withUnsafeBytes { g in inflated.withUnsafeBytes { GzipTrailer.ends(g, inflated: $0) } }
    }

    @Test func crc32IsGzipsCRC() {
        #expect(Array("123456789".utf8).withUnsafeBytes { GzipTrailer.crc32($0) } == 0xCBF4_3926)
        #expect([UInt8]().withUnsafeBytes { GzipTrailer.crc32($0) } == 0)
        #expect(Self.text.withUnsafeBytes { GzipTrailer.crc32($0) } == 0x0095_81B2)
    }

    @Test func aWholeMemberEndsWithTheTrailerOfItsData() {
        #expect(ends(Self.member, Self.text))
    }

    @Test func anythingElseDoesNot() {
        #expect(!ends(Self.member, Array(Self.text.dropLast())))  // less inflated: the length differs
        #expect(!ends(Self.member, Array("hello, tokenD".utf8)))  // same length, another CRC
        #expect(!ends(Array(Self.member.dropLast(8)), Self.text))  // cut before the trailer
        #expect(!ends(Array(Self.member.dropLast()), Self.text))
        #expect(!ends(Self.member + [0], Self.text))
        #expect(!ends(Array(Self.member.prefix(17)), []))  // shorter than a header and a trailer
        #expect(!ends([], []))
    }
}
