import ArgumentParser
import TokendProto

extension Clients {
    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a client.",
            discussion: "Example:\n  tokenctl clients delete resource-server"
        )
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
}
