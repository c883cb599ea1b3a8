import ArgumentParser
import TokendProto

extension Clients {
    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret",
            abstract: "Replace a client's secret; the old one stops working.",
            discussion: "Example:\n  tokenctl clients rotate-secret resource-server --output json"
        )
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
