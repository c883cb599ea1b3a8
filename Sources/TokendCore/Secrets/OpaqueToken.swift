/// Opaque token syntax: `tkd_at_` / `tkd_rt_` + 43 characters of base64url (32 random bytes).
public enum OpaqueToken {
    public static let randomLength = 43
    /// RFC 7662 answers `active:false` for anything longer without looking it up.
    public static let maximumLength = 4096

    public static func generate(_ kind: TokenKind) -> String { kind.prefix + Randomness.secret() }

    /// Whether `token` could be a token tokend issued. A malformed token is inactive without a lookup.
    public static func isWellFormed(_ token: some StringProtocol) -> Bool {
        let utf8 = token.utf8
        guard utf8.count == 7 + randomLength else { return false }
        guard token.hasPrefix(TokenKind.access.prefix) || token.hasPrefix(TokenKind.refresh.prefix) else { return false }
        return utf8.dropFirst(7).allSatisfy(Base64URL.isAlphabet)
    }
}
