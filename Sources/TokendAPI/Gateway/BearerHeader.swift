import TokendCore
import TokendWire

extension BearerPresentation {
    /// The end user's credential from an `Authorization` header value (RFC 6750 §2.1), read by
    /// `BearerAuthorization.token`: the scheme `Bearer` in any ASCII case, then the token. `Bearer`
    /// with nothing after it presents an empty (so invalid) token; no header, or another scheme,
    /// presents none.
    public init(authorization: String?) {
        self = BearerAuthorization.token(authorization).map { .token($0) } ?? .absent
    }
}
