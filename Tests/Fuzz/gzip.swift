// Fuzz target: Gunzip (Sources/TokendAPI/HTTP/Gunzip.swift, compiled into this target), what decides
// whether a Connect `Content-Encoding: gzip` body or a compressed Watch envelope is read: exactly one
// whole gzip member, at most the size limit once inflated. It runs over the system's zlib, with
// NIOCore and CompressNIO taken from the debug build (neither is instrumented: the coverage that
// guides this target is Gunzip's and this file's). Properties:
// - Gunzip agrees with a reference written here from RFC 1952 alone: the member's header parsed
//   field by field (FEXTRA, FNAME, FCOMMENT, FHCRC checked, reserved flags refused), the deflate
//   data inflated raw by zlib into at most limit + 1 bytes, then exactly the 8-byte trailer (CRC-32
//   by zlib's `crc32`, the length modulo 2^32) and nothing after it. Both give the same outcome,
//   and the same bytes when they inflate. Checked at the 64 KiB limit of SPEC and at a small limit
//   taken from the input, so that "too large" is reached often;
// - the input gzipped by CompressNIO (what tokend's own gzip answers use) inflates back to the input;
//   the same with its last byte cut, or one byte after it, is refused;
// - for one input in 16, the input repeated to a length either side of the limit: exactly the
//   lengths over it are "too large".
import CTokendZlib
import CompressNIO
import NIOCore

/// `RequestBody.maximumSize`: SPEC's 64 KiB, after gunzip as before.
let maximumSize = 64 * 1024

/// RFC 1952's member, read by the letter of the RFC and inflated raw (no zlib header handling).
func reference(_ body: [UInt8], limit: Int) -> Gunzip.Outcome {
    guard body.count >= 10, body[0] == 0x1F, body[1] == 0x8B, body[2] == 8 else { return .invalid }
    let flags = body[3]
    guard flags & 0xE0 == 0 else { return .invalid }  // reserved bits
    var at = 10
    if flags & 0x04 != 0 {  // FEXTRA: XLEN, little-endian, then XLEN bytes
        guard at + 2 <= body.count else { return .invalid }
        at += 2 + (Int(body[at]) | Int(body[at + 1]) << 8)
        guard at <= body.count else { return .invalid }
    }
    for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
        guard let zero = body[at...].firstIndex(of: 0) else { return .invalid }
        at = zero + 1
    }
    if flags & 0x02 != 0 {  // FHCRC: the low 16 bits of the CRC-32 of the header so far
        guard at + 2 <= body.count else { return .invalid }
        let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32(at))) }
        guard UInt16(body[at]) | UInt16(body[at + 1]) << 8 == UInt16(truncatingIfNeeded: crc) else { return .invalid }
        at += 2
    }

    // One address for the stream's life: zlib checks it (see Gunzip).
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    stream.initialize(to: z_stream())
    defer {
        stream.deinitialize(count: 1)
        stream.deallocate()
    }
    guard CTokendZlib_inflateInit2(stream, -15) == Z_OK else { fatalError("inflateInit2") }
    defer { inflateEnd(stream) }
    var output = [UInt8](repeating: 0, count: limit + 1)
    var input = Array(body[at...])
    let (result, read, written) = input.withUnsafeMutableBufferPointer { input in
        output.withUnsafeMutableBufferPointer { output in
            stream.pointee.next_in = input.baseAddress
            stream.pointee.avail_in = UInt32(input.count)
            stream.pointee.next_out = output.baseAddress
            stream.pointee.avail_out = UInt32(output.count)
            let result = CTokendZlib.inflate(stream, Z_FINISH)
            return (result, input.count - Int(stream.pointee.avail_in), output.count - Int(stream.pointee.avail_out))
        }
    }
    // Past the limit is "too large" whatever follows, as inflating stops there.
    if written > limit { return .tooLarge }
    guard result == Z_STREAM_END else { return .invalid }
    let inflated = Array(output[..<written])
    let trailer = at + read
    guard body.count - trailer == 8 else { return .invalid }
    func little(_ i: Int) -> UInt32 {
        UInt32(body[i]) | UInt32(body[i + 1]) << 8 | UInt32(body[i + 2]) << 16 | UInt32(body[i + 3]) << 24
    }
    let crc = inflated.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
    guard little(trailer) == crc, little(trailer + 4) == UInt32(truncatingIfNeeded: inflated.count) else { return .invalid }
    return .inflated(ByteBuffer(bytes: inflated))
}

func describe(_ outcome: Gunzip.Outcome) -> String {
    if case .inflated(let bytes) = outcome { return "inflated \(bytes.readableBytes) bytes" }
    return "\(outcome)"
}

func gzipped(_ bytes: [UInt8]) -> [UInt8] {
    var buffer = ByteBuffer(bytes: bytes)
    guard let compressed = try? buffer.compress(with: .gzip()) else { fatalError("CompressNIO could not gzip \(bytes.count) bytes") }
    return Array(compressed.readableBytesView)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGzip(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let head = Array(input.prefix(16))

    let small = Int(input.last ?? 0) * 4
    for limit in [maximumSize, small] {
        let outcome = Gunzip.inflate(ByteBuffer(bytes: input), maximumSize: limit)
        let expected = reference(input, limit: limit)
        require(outcome == expected, "\(head)… (\(size) bytes), limit \(limit): Gunzip \(describe(outcome)), RFC 1952 \(describe(expected))")
    }

    let member = gzipped(input)
    let back = Gunzip.inflate(ByteBuffer(bytes: member), maximumSize: maximumSize)
    require(back == .inflated(ByteBuffer(bytes: input)), "\(head)… (\(size) bytes) gzipped by CompressNIO: \(describe(back))")
    let cut = Gunzip.inflate(ByteBuffer(bytes: member.dropLast()), maximumSize: maximumSize)
    require(cut == .invalid, "\(head)… gzipped, last byte cut: \(describe(cut))")
    let longer = Gunzip.inflate(ByteBuffer(bytes: member + [input.first ?? 0]), maximumSize: maximumSize)
    require(longer == .invalid, "\(head)… gzipped, one byte after it: \(describe(longer))")

    if let first = input.first, first & 0x0F == 0 {
        // maximumSize - 2 ... maximumSize + 1 bytes: the last two are over the limit.
        let length = maximumSize - 2 + size % 4
        let big = (0..<length).map { input[$0 % size] }
        let outcome = Gunzip.inflate(ByteBuffer(bytes: gzipped(big)), maximumSize: maximumSize)
        let expected: Gunzip.Outcome = length > maximumSize ? .tooLarge : .inflated(ByteBuffer(bytes: big))
        require(outcome == expected, "\(head)… repeated to \(length) bytes: \(describe(outcome))")
    }
    return 0
}
