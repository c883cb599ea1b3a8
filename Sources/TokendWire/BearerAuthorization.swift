/// The end user's token in an `Authorization` header value (RFC 6750 §2.1), as `/authz` and Envoy
/// `ext_authz` read it. Here, without Core, so that the fuzzer can build it (`Tests/Fuzz/check_request`).
public enum BearerAuthorization {
    /// Leading spaces, the scheme `Bearer` in any case, spaces, then the token without trailing
    /// spaces. `Bearer` with nothing after it gives the empty (so invalid) token; no header, or
    /// another scheme, gives `nil`.
    public static func token(_ authorization: String?) -> String? {
        guard let value = authorization?.drop(while: { $0 == " " }) else { return nil }
        let scheme = value.prefix(while: { $0 != " " })
        guard scheme.lowercased() == "bearer" else { return nil }
        var token = value.dropFirst(scheme.count).drop(while: { $0 == " " })
        while token.last == " " { token = token.dropLast() }
        return String(token)
    }
}
