import Foundation
import TokendWire

/// Where a tokend's revocation stream is served, and as whom to ask:
/// `http(s)://client_id:secret@host:port` (SPEC, `TOKEND_REVOCATION_UPSTREAM`). The userinfo is
/// percent-decoded and sent to Watch as HTTP Basic credentials; `description` never shows the secret.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var tls: Bool
    public var clientID: String
    var secret: String

    /// Why a URL was refused; names the problem, never the secret.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ string: String) throws(Invalid) {
        guard let url = URLComponents(string: string), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme) else {
            throw Invalid(description: "must look like http(s)://client_id:secret@host:9090")
        }
        guard let host = url.host, !host.isEmpty else { throw Invalid(description: "has no host") }
        guard let user = url.percentEncodedUser?.removingPercentEncoding, !user.isEmpty,
            let password = url.percentEncodedPassword?.removingPercentEncoding, !password.isEmpty
        else {
            throw Invalid(description: "needs client credentials: http(s)://client_id:secret@host:9090 (percent-encode : @ / in them)")
        }
        guard url.path.isEmpty || url.path == "/", url.query == nil, url.fragment == nil else {
            throw Invalid(description: "must have no path, query or fragment")
        }
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.tls = scheme == "https"
        self.port = url.port ?? (tls ? 443 : 80)
        self.clientID = user
        self.secret = password
    }

    /// `Basic base64(client_id:secret)`, each form-encoded first as RFC 6749 §2.3.1 has it (and as
    /// tokend decodes them).
    public var basicAuthorization: String {
        "Basic " + Data("\(PercentEncoding.encode(clientID)):\(PercentEncoding.encode(secret))".utf8).base64EncodedString()
    }

    /// `scheme://client_id@host:port`, for logs and status output.
    public var description: String { "\(tls ? "https" : "http")://\(clientID)@\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}
