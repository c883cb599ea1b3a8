/// Random identifiers and secrets.
public enum Randomness {
    /// `count` bytes from the system CSPRNG.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// 32 random bytes as 43 characters of unpadded base64url.
    public static func secret() -> String { Base64URL.encode(bytes(32)) }

    /// A 128-bit random identifier (jti, grant id), 22 characters of base64url.
    public static func identifier() -> String { Base64URL.encode(bytes(16)) }
}
