import Foundation
import TokendCore

/// How every gateway dialect (`/authz`, Envoy `ext_authz`) renders a `GatewayDecision`: the
/// HTTP status the gateway answers the end user with, the `X-Tokend-*` headers it passes upstream,
/// and the RFC 6750 §3 challenge. Written once so that the dialects cannot drift apart.
public struct GatewayAnswer: Sendable, Equatable {
    /// 200 allowed, 401 missing or invalid token, 403 insufficient scope.
    public var status: Int
    /// Headers for the upstream request (allowed only), lower-case names.
    public var upstreamHeaders: [(name: String, value: String)]
    /// `WWW-Authenticate` for the end user (denied only).
    public var challenge: String?

    /// Every header name this dialect may set upstream; a gateway removes the client's own
    /// copies of these so that a caller cannot forge them.
    public static let upstreamHeaderNames = [
        "x-tokend-sub", "x-tokend-client-id", "x-tokend-scope", "x-tokend-aud", "x-tokend-exp", "x-tokend-username",
    ]

    /// The realm of the end user's Bearer challenge (RFC 6750 §3).
    public static let realm = "tokend"

    public init(_ decision: GatewayDecision) {
        switch decision {
        case .allowed(let record):
            status = 200
            challenge = nil
            var headers: [(name: String, value: String)] = []
            if let subject = record.subject { headers.append(("x-tokend-sub", subject)) }
            headers.append(("x-tokend-client-id", record.clientID))
            if let scope = record.scope { headers.append(("x-tokend-scope", scope)) }
            if !record.audiences.isEmpty { headers.append(("x-tokend-aud", record.audiences.joined(separator: ","))) }
            headers.append(("x-tokend-exp", String(Int64(record.expiresAt.timeIntervalSince1970.rounded(.down)))))
            if let username = record.username { headers.append(("x-tokend-username", username)) }
            upstreamHeaders = headers
        case .missingToken:
            status = 401
            upstreamHeaders = []
            challenge = "Bearer realm=\"\(Self.realm)\""
        case .invalidToken:
            status = 401
            upstreamHeaders = []
            challenge = "Bearer realm=\"\(Self.realm)\", error=\"invalid_token\""
        case .insufficientScope(let required):
            status = 403
            upstreamHeaders = []
            // SPEC's form exactly (no realm: RFC 6750 §3 makes it optional).
            challenge = "Bearer error=\"insufficient_scope\", scope=\"\(Self.quoted(required.joined(separator: " ")))\""
        }
    }

    /// The content of an RFC 9110 §5.6.4 quoted-string: `"` and `\` escaped. Scope tokens
    /// (RFC 6749 §3.3) never contain either, but a requirement from a gateway's configuration
    /// must not be able to break the header.
    static func quoted(_ value: String) -> String {
        var out = ""
        for character in value {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out
    }

    public static func == (lhs: GatewayAnswer, rhs: GatewayAnswer) -> Bool {
        lhs.status == rhs.status && lhs.challenge == rhs.challenge
            && lhs.upstreamHeaders.map(\.name) == rhs.upstreamHeaders.map(\.name)
            && lhs.upstreamHeaders.map(\.value) == rhs.upstreamHeaders.map(\.value)
    }
}
