// Fuzz target: ConnectEnvelope, the 5-byte prefix (flags, big-endian 32-bit length) of the one
// envelope a Connect Watch request holds, and of every envelope the stream writes. (What the
// envelope holds, gzip and a WatchRequest in proto or JSON, is CompressNIO's and swift-protobuf's:
// not fuzzed here.) Properties:
// - it accepts exactly the inputs whose length, read with Foundation (Data, big-endian), is the
//   number of bytes that follow, and then the message is those bytes;
// - an accepted envelope written again (prefix + message) is the input;
// - any flags and length taken from the input, written as a prefix before that many bytes, parse
//   back to the same flags and message.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnectEnvelope(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let parsed = ConnectEnvelope.single(raw)

    let bytes = Data(raw)
    var reference: (flags: UInt8, message: Range<Int>)?
    if bytes.count >= 5 {
        let length = bytes.subdata(in: 1..<5).withUnsafeBytes { UInt32(bigEndian: $0.loadUnaligned(as: UInt32.self)) }
        if Int(length) == bytes.count - 5 { reference = (bytes[0], 5..<bytes.count) }
    }
    require(parsed?.flags == reference?.flags && parsed?.message == reference?.message, "\(Array(raw.prefix(16))): \(String(describing: parsed)), Foundation reads \(String(describing: reference))")

    if let parsed {
        let written = ConnectEnvelope.prefix(flags: parsed.flags, length: parsed.message.count) + Array(raw[parsed.message])
        require(written == Array(raw), "\(Array(raw.prefix(16))) is written again differently")
    }

    if size >= 3 {
        let flags = raw[0]
        let length = Int(UInt16(raw[1]) << 8 | UInt16(raw[2])) % 4096
        let envelope = ConnectEnvelope.prefix(flags: flags, length: length) + [UInt8](repeating: 0xA5, count: length)
        let again = envelope.withUnsafeBytes { ConnectEnvelope.single($0) }
        require(again?.flags == flags && again?.message == 5..<(5 + length), "flags \(flags), length \(length) do not parse back")
        // One byte less or more is not one envelope.
        require(envelope.dropLast().withUnsafeBytes { ConnectEnvelope.single($0) } == nil, "a short envelope was accepted")
        require((envelope + [0]).withUnsafeBytes { ConnectEnvelope.single($0) } == nil, "an envelope with a byte after it was accepted")
    }
    return 0
}
