import ArgumentParser
import TokendProto

extension Clients {
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a client's roles, audiences or scopes; what is not given stays.",
            discussion: """
                Each option given replaces that whole attribute; --no-audiences and --no-scopes clear one.
                The secret stays. Other replicas apply the change within 2 seconds.
                Examples:
                  tokenctl clients update batch-job --role client_credentials --role introspect
                  tokenctl clients update batch-job --scope "orders:read" --output json
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The client_id.") var id: String
        @Option(name: .customLong("role"), help: "A role: \(ClientAttributes.roleNames) (repeatable; replaces the roles).")
        var roles: [String] = []
        @Option(name: .customLong("audience"), help: "An audience (repeatable; replaces the audiences).") var audiences: [String] = []
        @Option(name: .customLong("scope"), help: "Allowed scopes, space-separated (repeatable; replaces the scopes).") var scopes: [String] = []
        @Flag(name: .customLong("no-audiences"), help: "Remove every audience restriction.") var noAudiences = false
        @Flag(name: .customLong("no-scopes"), help: "Remove every allowed scope.") var noScopes = false

        func validate() throws {
            try ClientAttributes.validate(roles: roles)
            if noAudiences && !audiences.isEmpty { throw ValidationError("give --audience or --no-audiences, not both") }
            if noScopes && !scopes.isEmpty { throw ValidationError("give --scope or --no-scopes, not both") }
            if roles.isEmpty && audiences.isEmpty && scopes.isEmpty && !noAudiences && !noScopes {
                throw ValidationError("nothing to change: give --role, --audience, --scope, --no-audiences or --no-scopes")
            }
        }

        func run() async throws {
            var request = Tokend_V1_UpdateClientRequest()
            request.clientID = id
            if !roles.isEmpty { request.roles.values = roles }
            // Setting `values` (even to []) gives the field presence: replace, not keep.
            if !audiences.isEmpty || noAudiences { request.audiences.values = audiences }
            if !scopes.isEmpty || noScopes { request.scopes.values = scopes }
            let response: Tokend_V1_UpdateClientResponse = try await connection.call("UpdateClient", request)
            let c = response.client
            switch connection.output {
            case .json: Output.json(ClientAttributes.json(c))
            case .table:
                Output.fields([
                    ("client_id", c.clientID), ("roles", c.roles.joined(separator: ",")),
                    ("audiences", c.audiences.isEmpty ? "-" : c.audiences.joined(separator: ",")),
                    ("scopes", c.scopes.isEmpty ? "-" : c.scopes.joined(separator: " ")),
                ])
            }
        }
    }
}
