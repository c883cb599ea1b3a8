import Foundation
import TokendCore

// Store writes without an audit event, as the tests' fixtures make them (production code always
// says whether a write is audited).
extension ClientStore {
    public func createClient(_ client: ClientRecord) async throws { try await createClient(client, audit: nil) }
    public func deleteClient(id: String) async throws -> Bool { try await deleteClient(id: id, audit: nil) }
    public func updateClientSecret(id: String, salt: [UInt8], hash: [UInt8]) async throws -> Bool {
        try await updateClientSecret(id: id, salt: salt, hash: hash, audit: nil)
    }
    public func updateClient(_ client: ClientRecord) async throws -> Bool { try await updateClient(client, audit: nil) }
}

extension TokenStore {
    public func insertTokens(_ tokens: [TokenRecord]) async throws { try await insertTokens(tokens, audit: nil) }
}

extension SigningKeyStore {
    public func rotateSigningKey(to key: StoredSigningKey, retiring: Date) async throws {
        try await rotateSigningKey(to: key, retiring: retiring, audit: nil)
    }
}
