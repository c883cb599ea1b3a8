import ArgumentParser
import TokendProto

extension Clients {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients.", discussion: "Example:\n  tokenctl clients list --output json")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Tokend_V1_ListClientsResponse = try await connection.call("ListClients", Tokend_V1_ListClientsRequest())
            switch connection.output {
            case .json:
                Output.json([
                    "clients": response.clients.map { c in
                        ClientAttributes.json(c)
                    }
                ])
            case .table:
                Output.table(
                    ["CLIENT_ID", "ROLES", "AUDIENCES", "SCOPES", "CREATED"],
                    response.clients.map { c in
                        [
                            c.clientID, c.roles.isEmpty ? "-" : c.roles.joined(separator: ","),
                            c.audiences.isEmpty ? "-" : c.audiences.joined(separator: ","),
                            c.scopes.isEmpty ? "-" : c.scopes.joined(separator: " "), Output.time(c.createdAt),
                        ]
                    }
                )
            }
        }
    }
}
