import ArgumentParser
import Foundation
import TokendProto

struct Clients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage OAuth clients (resource servers, the authorization server).",
        subcommands: [Create.self, List.self, Delete.self, RotateSecret.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a client and print its secret (shown once).",
            discussion: """
                Roles: introspect (resource servers), issue (the authorization server), revoke (any token).
                Examples:
                  tokenctl clients create resource-server --role introspect --audience api.example.com
                  tokenctl clients create auth-server --role issue --role revoke --output json
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The client_id.") var id: String
        @Option(name: .customLong("role"), help: "A role: introspect, issue or revoke (repeatable).") var roles: [String] = []
        @Option(name: .customLong("audience"), help: "Restrict the client to tokens for this audience (repeatable).") var audiences: [String] = []

        func validate() throws {
            for role in roles where !["introspect", "issue", "revoke"].contains(role) {
                throw ValidationError("unknown role \"\(role)\" (introspect, issue, revoke)")
            }
        }

        func run() async throws {
            var request = Tokend_V1_CreateClientRequest()
            request.clientID = id
            request.roles = roles
            request.audiences = audiences
            let response: Tokend_V1_CreateClientResponse = try await connection.call("CreateClient", request)
            switch connection.output {
            case .json:
                Output.json(["client_id": response.clientID, "client_secret": response.clientSecret,
                             "roles": response.roles, "audiences": response.audiences])
            case .table:
                Output.fields([("client_id", response.clientID), ("client_secret", response.clientSecret),
                               ("roles", response.roles.joined(separator: ",")),
                               ("audiences", response.audiences.isEmpty ? "-" : response.audiences.joined(separator: ","))])
                FileHandle.standardError.write(Data("The secret is shown only now: store it.\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients.", discussion: "Example:\n  tokenctl clients list --output json")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Tokend_V1_ListClientsResponse = try await connection.call("ListClients", Tokend_V1_ListClientsRequest())
            switch connection.output {
            case .json:
                Output.json(["clients": response.clients.map { c in
                    ["client_id": c.clientID, "roles": c.roles, "audiences": c.audiences, "created_at": c.createdAt] as [String: Any]
                }])
            case .table:
                Output.table(["CLIENT_ID", "ROLES", "AUDIENCES", "CREATED"], response.clients.map { c in
                    [c.clientID, c.roles.isEmpty ? "-" : c.roles.joined(separator: ","),
                     c.audiences.isEmpty ? "-" : c.audiences.joined(separator: ","), Output.time(c.createdAt)]
                })
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a client.", discussion: "Example:\n  tokenctl clients delete resource-server")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The client_id.") var id: String

        func run() async throws {
            var request = Tokend_V1_DeleteClientRequest()
            request.clientID = id
            let _: Tokend_V1_DeleteClientResponse = try await connection.call("DeleteClient", request)
            switch connection.output {
            case .json: Output.json(["client_id": id, "deleted": true])
            case .table: print("deleted client \(id)")
            }
        }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret", abstract: "Replace a client's secret; the old one stops working.",
            discussion: "Example:\n  tokenctl clients rotate-secret resource-server --output json")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The client_id.") var id: String

        func run() async throws {
            var request = Tokend_V1_RotateClientSecretRequest()
            request.clientID = id
            let response: Tokend_V1_RotateClientSecretResponse = try await connection.call("RotateClientSecret", request)
            switch connection.output {
            case .json: Output.json(["client_id": response.clientID, "client_secret": response.clientSecret])
            case .table: Output.fields([("client_id", response.clientID), ("client_secret", response.clientSecret)])
            }
        }
    }
}
