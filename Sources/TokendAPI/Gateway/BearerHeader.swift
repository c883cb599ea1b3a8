import TokendCore

extension BearerPresentation {
    /// The end user's credential from an `Authorization` header value (RFC 6750 §2.1): the scheme
    /// `Bearer` in any case, then the token. `Bearer` with nothing after it presents an empty (so
    /// invalid) token; no header, or another scheme, presents none.
    public init(authorization: String?) {
        guard let value = authorization?.drop(while: { $0 == " " }) else {
            self = .absent
            return
        }
        let scheme = value.prefix(while: { $0 != " " })
        guard scheme.lowercased() == "bearer" else {
            self = .absent
            return
        }
        let rest = value.dropFirst(scheme.count).drop(while: { $0 == " " })
        var token = Substring(rest)
        while token.last == " " { token = token.dropLast() }
        self = .token(String(token))
    }
}
