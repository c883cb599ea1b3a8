import ArgumentParser

struct Clients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage OAuth clients (resource servers, the authorization server).",
        subcommands: [Create.self, List.self, Delete.self, RotateSecret.self]
    )
}
