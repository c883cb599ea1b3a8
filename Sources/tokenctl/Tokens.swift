import ArgumentParser
import Foundation
import TokendProto

struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue and introspect tokens.",
        subcommands: [Issue.self, Introspect.self]
    )

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

    struct Introspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Introspect a token (RFC 7662), without any client's audience restriction.",
            discussion: """
                Examples:
                  tokenctl tokens introspect tkd_at_...
                  echo "$TOKEN" | tokenctl tokens introspect - --output json
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The token, or - to read it from standard input.") var token: String

        func run() async throws {
            var request = Tokend_V1_IntrospectRequest()
            request.token = try resolveToken(token)
            let r: Tokend_V1_IntrospectResponse = try await connection.call("Introspect", request)
            let object = Self.rfc7662(r)
            switch connection.output {
            case .json: Output.json(object)
            case .table:
                let order = ["active", "client_id", "sub", "username", "scope", "aud", "token_type", "iss", "iat", "nbf", "exp", "jti", "grant_id", "cnf"]
                var pairs: [(String, String)] = []
                for key in order + object.keys.filter({ !order.contains($0) }).sorted() {
                    guard let value = object[key] else { continue }
                    switch value {
                    case let list as [String]: pairs.append((key, list.joined(separator: ",")))
                    case let number as Int64 where ["iat", "nbf", "exp"].contains(key): pairs.append((key, "\(number) (\(Output.time(number)))"))
                    case let map as [String: String]: pairs.append((key, map.map { "\($0)=\($1)" }.sorted().joined(separator: ",")))
                    default: pairs.append((key, "\(value)"))
                    }
                }
                Output.fields(pairs)
            }
        }

        /// The RFC 7662 §2.2 object: `{"active":false}` alone, or every claim that is set.
        static func rfc7662(_ r: Tokend_V1_IntrospectResponse) -> [String: Any] {
            guard r.active else { return ["active": false] }
            var object: [String: Any] = ["active": true]
            for (key, value) in r.ext { object[key] = value }
            object["active"] = true
            object["client_id"] = r.clientID
            if !r.scope.isEmpty { object["scope"] = r.scope }
            if !r.username.isEmpty { object["username"] = r.username }
            if !r.tokenType.isEmpty { object["token_type"] = r.tokenType }
            if r.exp != 0 { object["exp"] = r.exp }
            if r.iat != 0 { object["iat"] = r.iat }
            if r.nbf != 0 { object["nbf"] = r.nbf }
            if !r.sub.isEmpty { object["sub"] = r.sub }
            if !r.aud.isEmpty { object["aud"] = r.aud }
            if !r.iss.isEmpty { object["iss"] = r.iss }
            if !r.jti.isEmpty { object["jti"] = r.jti }
            if !r.grantID.isEmpty { object["grant_id"] = r.grantID }
            if r.hasCnf {
                var cnf: [String: String] = [:]
                if !r.cnf.jkt.isEmpty { cnf["jkt"] = r.cnf.jkt }
                if !r.cnf.x5TS256.isEmpty { cnf["x5t#S256"] = r.cnf.x5TS256 }
                if !cnf.isEmpty { object["cnf"] = cnf }
            }
            return object
        }
    }
}
