import Foundation
import NIOCore
import PostgresNIO
import Testing
import TokendCore

@testable import TokendPostgres

/// `revocations.token_hashes` decoded from PostgreSQL's binary array format without a String per element.
@Suite struct HexTokenHashesTests {
    static func binaryArray(_ elements: [String?]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(elements.isEmpty ? 0 : 1))
        buffer.writeInteger(Int32(elements.contains(nil) ? 1 : 0))
        buffer.writeInteger(UInt32(25))  // text
        if !elements.isEmpty {
            buffer.writeInteger(Int32(elements.count))
            buffer.writeInteger(Int32(1))
        }
        for element in elements {
            if let element {
                buffer.writeInteger(Int32(element.utf8.count))
                buffer.writeString(element)
            } else {
                buffer.writeInteger(Int32(-1))
            }
        }
        return buffer
    }

    static func decode(_ buffer: ByteBuffer, format: PostgresFormat = .binary) throws -> [TokenHash] {
        var copy = buffer
        return try HexTokenHashes(from: &copy, type: .textArray, format: format, context: .default).hashes
    }

    @Test func decodesHashesAndSkipsWhatIsNotAHash() throws {
        let a = TokenHash(token: "a")
        let b = TokenHash(token: "b")
        #expect(try Self.decode(Self.binaryArray([a.hex, "nothex", nil, b.hex.uppercased()])) == [a, b])
        #expect(try Self.decode(Self.binaryArray([])) == [])
        #expect(try Self.decode(ByteBuffer(string: "{\(a.hex),\(b.hex)}"), format: .text) == [a, b])
    }

    @Test func rejectsTruncatedArrays() {
        var truncated = Self.binaryArray([TokenHash(token: "a").hex])
        truncated.moveWriterIndex(to: truncated.writerIndex - 10)
        #expect(throws: (any Error).self) { try Self.decode(truncated) }
        #expect(throws: (any Error).self) { try Self.decode(ByteBuffer(bytes: [0, 0])) }
    }
}
