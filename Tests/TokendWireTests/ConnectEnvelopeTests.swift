import Testing

@testable import TokendWire

private func single(_ bytes: [UInt8]) -> (flags: UInt8, message: Range<Int>)? {
    bytes.withUnsafeBytes { ConnectEnvelope.single($0) }
}

@Suite struct ConnectEnvelopeTests {
    @Test func prefixIsFlagsAndABigEndianLength() {
        #expect(ConnectEnvelope.prefix(flags: 0, length: 0) == [0, 0, 0, 0, 0])
        #expect(ConnectEnvelope.prefix(flags: ConnectEnvelope.endOfStream, length: 2) == [2, 0, 0, 0, 2])
        #expect(ConnectEnvelope.prefix(flags: 1, length: 0x0102_0304) == [1, 1, 2, 3, 4])
    }

    @Test func exactlyOneEnvelopeIsAccepted() {
        let envelope: [UInt8] = [1, 0, 0, 0, 3, 7, 8, 9]
        #expect(single(envelope)?.flags == 1)
        #expect(single(envelope)?.message == 5..<8)
        #expect(single([0, 0, 0, 0, 0])?.message == 5..<5)
        for bad: [UInt8] in [[], [0, 0, 0, 0], Array(envelope.dropLast()), envelope + [0], envelope + envelope, [0, 0xFF, 0xFF, 0xFF, 0xFF]] {
            #expect(single(bad) == nil, "\(bad)")
        }
    }
}
