import ArgumentParser
import Foundation
import TokendProto

extension Clients {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a client and print its secret (shown once).",
            discussion: """
                Roles: introspect (resource servers), issue (the authorization server), revoke (any token),
                client_credentials (tokens for itself at /oauth2/token, within its --scope).
                Examples:
                  tokenctl clients create resource-server --role introspect --audience api.example.com
                  tokenctl clients create auth-server --role issue --role revoke --output json
                  tokenctl clients create batch-job --role client_credentials --scope "orders:read orders:write"
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The client_id.") var id: String
        @Option(name: .customLong("role"), help: "A role: \(ClientAttributes.roleNames) (repeatable).") var roles: [String] = []
        @Option(name: .customLong("audience"), help: "Restrict the client to tokens for this audience (repeatable).") var audiences: [String] = []
        @Option(name: .customLong("scope"), help: "Scopes the client may request for itself, space-separated (repeatable).")
        var scopes: [String] = []

        func validate() throws { try ClientAttributes.validate(roles: roles) }

        func run() async throws {
            var request = Tokend_V1_CreateClientRequest()
            request.clientID = id
            request.roles = roles
            request.audiences = audiences
            request.scopes = scopes
            let response: Tokend_V1_CreateClientResponse = try await connection.call("CreateClient", request)
            switch connection.output {
            case .json:
                Output.json([
                    "client_id": response.clientID, "client_secret": response.clientSecret,
                    "roles": response.roles, "audiences": response.audiences, "scopes": response.scopes,
                ])
            case .table:
                Output.fields([
                    ("client_id", response.clientID), ("client_secret", response.clientSecret),
                    ("roles", response.roles.joined(separator: ",")),
                    ("audiences", response.audiences.isEmpty ? "-" : response.audiences.joined(separator: ",")),
                    ("scopes", response.scopes.isEmpty ? "-" : response.scopes.joined(separator: " ")),
                ])
                FileHandle.standardError.write(Data("The secret is shown only now: store it.\n".utf8))
            }
        }
    }
}
