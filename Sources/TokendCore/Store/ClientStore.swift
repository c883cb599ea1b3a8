/// Registered clients. Implementations throw `TokendError.alreadyExists` on a duplicate id and
/// any other error when the store cannot answer.
///
/// Each write takes the `audit` event that records it (`nil`: none) and appends it in the same
/// transaction, only when the write took effect (not for a missing client).
public protocol ClientStore: Sendable {
    func createClient(_ client: ClientRecord, audit: AuditEvent?) async throws
    /// `nil` when no such client exists.
    func client(id: String) async throws -> ClientRecord?
    func listClients() async throws -> [ClientRecord]
    /// Deletes the client; its tokens stay as they are. `false` when no such client exists.
    func deleteClient(id: String, audit: AuditEvent?) async throws -> Bool
    /// Replaces the secret hash. `false` when no such client exists.
    func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8], audit: AuditEvent?) async throws -> Bool
    /// Replaces the client's roles, audiences and scopes with `client`'s (the secret and creation
    /// time stay). `false` when no such client exists.
    func updateClient(_ client: ClientRecord, audit: AuditEvent?) async throws -> Bool
}
