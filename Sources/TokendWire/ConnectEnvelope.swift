/// The envelope of Connect streaming (connectrpc.com/docs/protocol, "Streaming"): one byte of
/// flags, the message's length as a big-endian 32-bit integer, then the message.
public enum ConnectEnvelope {
    /// Flag: the message is compressed with the stream's `Connect-Content-Encoding`.
    public static let compressed: UInt8 = 0x01
    /// Flag: the end-of-stream message (JSON, `{}` or `{"error":…}`).
    public static let endOfStream: UInt8 = 0x02

    /// The five bytes before a message of `length` bytes (at most `UInt32.max`).
    public static func prefix(flags: UInt8, length: Int) -> [UInt8] {
        let length = UInt32(length)
        return [flags, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)]
    }

    /// `bytes` as exactly one envelope: its flags and where its message lies in `bytes`; `nil`
    /// when they are fewer than five, or the length says more or less than the bytes that follow.
    public static func single(_ bytes: UnsafeRawBufferPointer) -> (flags: UInt8, message: Range<Int>)? {
        guard bytes.count >= 5 else { return nil }
        let length = UInt32(bytes[1]) << 24 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 8 | UInt32(bytes[4])
        guard UInt64(length) == UInt64(bytes.count - 5) else { return nil }
        return (bytes[0], 5..<bytes.count)
    }
}
