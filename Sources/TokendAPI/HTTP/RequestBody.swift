import CompressNIO
import Hummingbird
import NIOCore
import TokendCore
import TokendWire

/// Request bodies, read whole with one limit for every dialect.
enum RequestBody {
    /// SPEC: bodies over 64 KiB are refused (413).
    static let maximumSize = 64 * 1024

    /// The whole body; `TokendError.tooLarge` past `maximumSize`.
    static func collect(_ request: Request) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: maximumSize)
        } catch is NIOTooManyBytesError {
            throw TokendError.tooLarge
        }
    }

    /// A gzip body (Connect's `Content-Encoding: gzip`, or Watch's compressed envelope) inflated:
    /// `TokendError.tooLarge` past `maximumSize` once inflated, without inflating further; `nil`
    /// unless it is exactly one whole gzip member (not gzip, corrupt, cut short, or followed by
    /// other bytes, which zlib alone would take: see `GzipTrailer`).
    static func gunzip(_ body: ByteBuffer) throws -> ByteBuffer? {
        var unread = body
        let inflated: ByteBuffer
        do {
            // One byte of room, so that a body of exactly one byte too many decompresses and is
            // refused below, and larger ones stop at the overflow without inflating further.
            inflated = try unread.decompress(with: .gzip(), maxSize: maximumSize + 1)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw TokendError.tooLarge
        } catch {
            return nil
        }
        guard inflated.readableBytes <= maximumSize else { throw TokendError.tooLarge }
        // `decompress` moves `unread`'s reader past what zlib read: all of it, up to the trailer.
        guard unread.readableBytes == 0,
            body.withUnsafeReadableBytes({ gzip in inflated.withUnsafeReadableBytes { GzipTrailer.ends(gzip, inflated: $0) } })
        else { return nil }
        return inflated
    }
}
