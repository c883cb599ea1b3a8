import ArgumentParser
import TokendProto

struct Clients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage OAuth clients (resource servers, the authorization server).",
        subcommands: [Create.self, Update.self, List.self, Delete.self, RotateSecret.self]
    )
}

/// What `clients create`, `update` and `list` share: role names and a client's JSON form.
enum ClientAttributes {
    static let roles = ["introspect", "issue", "revoke", "client_credentials"]
    static let roleNames = roles.joined(separator: ", ")

    static func validate(roles given: [String]) throws {
        for role in given where !roles.contains(role) {
            throw ValidationError("unknown role \"\(role)\" (\(roleNames))")
        }
    }

    static func json(_ c: Tokend_V1_Client) -> [String: Any] {
        ["client_id": c.clientID, "roles": c.roles, "audiences": c.audiences, "scopes": c.scopes, "created_at": c.createdAt]
    }
}
