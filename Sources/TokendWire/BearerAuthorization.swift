/// The end user's token in an `Authorization` header value (RFC 6750 §2.1), as `/authz` and Envoy
/// `ext_authz` read it. Here, without Core, so that the fuzzer can build it (`Tests/Fuzz/check_request`).
public enum BearerAuthorization {
    /// Leading spaces, the scheme `Bearer` in any ASCII case, spaces, then the token without
    /// trailing spaces. `Bearer` with nothing after it gives the empty (so invalid) token; no
    /// header, or another scheme, gives `nil`. Read on the UTF-8 bytes, as the grammar is (RFC 7235
    /// §2.1: the scheme, then SP): by `Character`, a space followed by a combining mark is one
    /// character and no space, so `Bearer` then U+0301 then a token read as another scheme.
    public static func token(_ authorization: String?) -> String? {
        guard let utf8 = authorization?.utf8 else { return nil }
        let space = UInt8(ascii: " ")
        guard let schemeStart = utf8.firstIndex(where: { $0 != space }) else { return nil }
        let schemeEnd = utf8[schemeStart...].firstIndex(of: space) ?? utf8.endIndex
        let scheme = utf8[schemeStart..<schemeEnd]
        // `| 0x20` lowers an ASCII letter; only `B` and `b` give `b`, and so on for the others.
        guard scheme.count == 6, zip(scheme, "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 }) else { return nil }
        var start = schemeEnd
        var end = utf8.endIndex
        while start < end && utf8[start] == space { start = utf8.index(after: start) }
        while end > start && utf8[utf8.index(before: end)] == space { end = utf8.index(before: end) }
        return String(decoding: utf8[start..<end], as: UTF8.self)
    }
}
