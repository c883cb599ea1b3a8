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
}
