import ArgumentParser
import TokendProto

extension Tokens {
    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue an access token (and, with --refresh, a refresh token) to a client.",
            discussion: """
                Prints an RFC 6749 token response.
                Examples:
                  tokenctl tokens issue --client resource-server --subject alice --scope "read write" --ttl 1h
                  tokenctl tokens issue --client app --subject bob --audience api --refresh --output json
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The client the token is issued to.") var client: String
        @Option(help: "The subject (sub).") var subject: String
        @Option(help: "Space-separated scopes.") var scope: String?
        @Option(name: .customLong("audience"), help: "An audience (aud), repeatable.") var audiences: [String] = []
        @Option(help: "Access token lifetime, e.g. 90s, 15m, 1h, 7d (default 1h).") var ttl: String?
        @Flag(help: "Also issue a refresh token (a new grant).") var refresh = false
        @Option(help: "Refresh token lifetime (default 30d).") var refreshTtl: String?
        @Option(help: "The username claim.") var username: String?
        @Option(name: .customLong("claim"), help: "An extra string claim NAME=VALUE, repeatable.") var claims: [String] = []
        @Option(help: "Bind the token to a DPoP key: its JWK SHA-256 thumbprint (cnf.jkt).") var jkt: String?

        func validate() throws {
            if let ttl, parseTTL(ttl) == nil { throw ValidationError("--ttl must be a duration such as 15m or 1h") }
            if let refreshTtl, parseTTL(refreshTtl) == nil { throw ValidationError("--refresh-ttl must be a duration such as 30d") }
            for claim in claims where !claim.contains("=") { throw ValidationError("--claim takes NAME=VALUE") }
        }

        func run() async throws {
            var request = Tokend_V1_IssueTokenRequest()
            request.clientID = client
            request.subject = subject
            request.scope = scope ?? ""
            request.audiences = audiences
            request.ttlSeconds = ttl.flatMap(parseTTL) ?? 0
            request.refresh = refresh
            request.refreshTtlSeconds = refreshTtl.flatMap(parseTTL) ?? 0
            request.username = username ?? ""
            if let jkt { request.cnf.jkt = jkt }
            for claim in claims {
                let parts = claim.split(separator: "=", maxSplits: 1)
                request.extra[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            let r: Tokend_V1_IssueTokenResponse = try await connection.call("IssueToken", request)
            var object: [String: Any] = [
                "access_token": r.accessToken, "token_type": r.tokenType, "expires_in": r.expiresIn,
                "grant_id": r.grantID, "jti": r.jti,
            ]
            if !r.refreshToken.isEmpty { object["refresh_token"] = r.refreshToken }
            if !r.scope.isEmpty { object["scope"] = r.scope }
            switch connection.output {
            case .json: Output.json(object)
            case .table:
                var pairs = [("access_token", r.accessToken), ("token_type", r.tokenType), ("expires_in", "\(r.expiresIn)")]
                if !r.refreshToken.isEmpty { pairs.append(("refresh_token", r.refreshToken)) }
                if !r.scope.isEmpty { pairs.append(("scope", r.scope)) }
                pairs += [("grant_id", r.grantID), ("jti", r.jti)]
                Output.fields(pairs)
            }
        }
    }
}
