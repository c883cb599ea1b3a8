/// Everything tokend keeps. One conformance suite runs against every implementation.
public protocol TokendStore: ClientStore, TokenStore, SigningKeyStore, AuditLog {
    /// A short name for status output: `postgres` or `sqlite`.
    var name: String { get }
    /// Succeeds when the store can answer queries now.
    func ping() async throws
}
