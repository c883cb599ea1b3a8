import Foundation
import PostgresNIO
import TokendCore

/// The `revocations.token_hashes` column (`text[]` of 64 hex digits each) decoded straight from
/// PostgreSQL's array wire format into hashes, without a `String` per element: at a cold start
/// over 1,000,000 live revocations this is most of the decoding. Elements that are not 64 hex
/// digits are skipped, as `TokenHash(hex:)` would skip them.
struct HexTokenHashes: PostgresDecodable {
    var hashes: [TokenHash]

    init<JSONDecoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer,
        type: PostgresDataType,
        format: PostgresFormat,
        context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        switch format {
        case .binary:
            hashes = try Self.binary(&buffer)
        case .text:
            // `{a,b}`: hex digits need no quoting.
            let text = buffer.readString(length: buffer.readableBytes) ?? ""
            hashes = text.dropFirst().dropLast().split(separator: ",").compactMap { TokenHash(hex: String($0)) }
        }
    }

    /// ndim, has-null flag, element oid, (size, lower bound) per dimension, then (length, bytes)
    /// per element, length -1 for NULL.
    private static func binary(_ buffer: inout ByteBuffer) throws -> [TokenHash] {
        guard let dimensions = buffer.readInteger(as: Int32.self), buffer.readInteger(as: Int32.self) != nil,
            buffer.readInteger(as: UInt32.self) != nil
        else { throw PostgresDecodingError.Code.failure }
        guard dimensions > 0 else { return [] }
        guard dimensions == 1, let count = buffer.readInteger(as: Int32.self), count >= 0,
            buffer.readInteger(as: Int32.self) != nil
        else { throw PostgresDecodingError.Code.failure }
        var hashes: [TokenHash] = []
        hashes.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let length = buffer.readInteger(as: Int32.self) else { throw PostgresDecodingError.Code.failure }
            guard length >= 0 else { continue }
            guard buffer.readableBytes >= Int(length) else { throw PostgresDecodingError.Code.failure }
            let hash = buffer.readWithUnsafeReadableBytes { raw in
                (Int(length), TokenHash(hexUTF8: UnsafeRawBufferPointer(rebasing: raw[..<Int(length)])))
            }
            if let hash { hashes.append(hash) }
        }
        return hashes
    }
}
