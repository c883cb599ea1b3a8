/// Registered clients. Implementations throw `TokendError.alreadyExists` on a duplicate id and
/// any other error when the store cannot answer.
public protocol ClientStore: Sendable {
    func createClient(_ client: ClientRecord) async throws
    /// `nil` when no such client exists.
    func client(id: String) async throws -> ClientRecord?
    func listClients() async throws -> [ClientRecord]
    /// Deletes the client; its tokens stay as they are. `false` when no such client exists.
    func deleteClient(id: String) async throws -> Bool
    /// Replaces the secret hash. `false` when no such client exists.
    func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8]) async throws -> Bool
    /// Replaces the client's roles, audiences and scopes with `client`'s (the secret and creation
    /// time stay). `false` when no such client exists.
    func updateClient(_ client: ClientRecord) async throws -> Bool
}
