import ArgumentParser
import TokendProto

extension Tokens {
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
                let order = [
                    "active", "client_id", "sub", "username", "scope", "aud", "token_type", "iss", "iat", "nbf", "exp", "jti", "grant_id", "cnf",
                ]
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
