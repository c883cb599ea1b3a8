import CTokendZlib
import NIOCore

/// A gzip request body inflated, or why not: what decides whether a Connect `Content-Encoding: gzip`
/// body, or Watch's compressed envelope, is read (`RequestBody.gunzip`).
///
/// zlib inflates the whole body in one call into room for the limit and one byte more, and the body
/// is read only when zlib reached the end of the member (having checked its CRC-32 and length) with
/// every byte read. CompressNIO's `decompress` cannot say that: it takes a body cut short as the
/// part that inflated, and stops after the first member.
///
/// It imports nothing but zlib and NIOCore, so that the `gzip` fuzz target (Tests/Fuzz/gzip.swift)
/// compiles this very file with the sanitizers.
enum Gunzip {
    enum Outcome: Equatable {
        case inflated(ByteBuffer)
        /// More than `maximumSize` bytes once inflated (inflating stops at the first byte too many).
        case tooLarge
        /// Not exactly one whole gzip member: not gzip, corrupt, cut short, or followed by other bytes.
        case invalid
    }

    static func inflate(_ body: ByteBuffer, maximumSize: Int) -> Outcome {
        precondition(maximumSize < UInt32.max, "zlib counts in 32 bits")
        guard body.readableBytes < UInt32.max else { return .invalid }
        // zlib keeps the stream's address (inflate checks it), so the stream lives at one address
        // for its whole life, not in a Swift variable that may move.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        // 15 + 16: a 32 KiB window, and the gzip wrapper only (not zlib's, not raw deflate).
        guard CTokendZlib_inflateInit2(stream, 15 + 16) == Z_OK else { return .invalid }
        defer { inflateEnd(stream) }
        var inflated = ByteBufferAllocator().buffer(capacity: maximumSize + 1)
        var result = Z_OK
        body.withUnsafeReadableBytes { input in
            inflated.writeWithUnsafeMutableBytes(minimumWritableBytes: maximumSize + 1) { output in
                stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = UInt32(input.count)
                stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = UInt32(maximumSize + 1)
                result = CTokendZlib.inflate(stream, Z_FINISH)
                return maximumSize + 1 - Int(stream.pointee.avail_out)
            }
        }
        // Past the limit, whatever follows: inflating stopped at the first byte too many.
        if inflated.readableBytes > maximumSize { return .tooLarge }
        // The member's end, its trailer checked, and nothing after it.
        guard result == Z_STREAM_END, stream.pointee.avail_in == 0 else { return .invalid }
        return .inflated(inflated)
    }
}
