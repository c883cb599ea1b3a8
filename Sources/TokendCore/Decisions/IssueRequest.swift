import Foundation

/// What to mint.
public struct IssueRequest: Sendable {
    public var clientID: String
    public var subject: String?
    public var username: String?
    public var scope: String?
    public var audiences: [String]
    /// Access token lifetime; `nil` for the default of one hour.
    public var ttl: TimeInterval?
    public var refresh: Bool
    /// Refresh token lifetime; `nil` for the default of 30 days.
    public var refreshTTL: TimeInterval?
    public var confirmation: Confirmation?
    public var extra: [String: String]
    /// Not valid before; `nil` for "at once".
    public var notBefore: Date?

    public init(
        clientID: String,
        subject: String? = nil,
        username: String? = nil,
        scope: String? = nil,
        audiences: [String] = [],
        ttl: TimeInterval? = nil,
        refresh: Bool = false,
        refreshTTL: TimeInterval? = nil,
        confirmation: Confirmation? = nil,
        extra: [String: String] = [:],
        notBefore: Date? = nil
    ) {
        self.clientID = clientID
        self.subject = subject
        self.username = username
        self.scope = scope
        self.audiences = audiences
        self.ttl = ttl
        self.refresh = refresh
        self.refreshTTL = refreshTTL
        self.confirmation = confirmation
        self.extra = extra
        self.notBefore = notBefore
    }
}

/// Freshly minted tokens. The raw tokens exist only here, on their way to the caller.
public struct IssuedTokens: Sendable {
    public var accessToken: String
    public var access: TokenRecord
    public var refreshToken: String?
    public var refresh: TokenRecord?
    public var expiresIn: Int64

    /// The records to store: the access token, then the refresh token if any.
    public var records: [TokenRecord] { [access] + (refresh.map { [$0] } ?? []) }
}
