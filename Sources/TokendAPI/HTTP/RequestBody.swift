import Hummingbird
import NIOCore
import TokendCore

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
    /// unless it is exactly one whole gzip member (`Gunzip`).
    static func gunzip(_ body: ByteBuffer) throws -> ByteBuffer? {
        switch Gunzip.inflate(body, maximumSize: maximumSize) {
        case .inflated(let inflated): return inflated
        case .tooLarge: throw TokendError.tooLarge
        case .invalid: return nil
        }
    }
}
