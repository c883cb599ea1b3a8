/// What a committed revocation did.
public struct RevocationOutcome: Sendable, Equatable {
    /// How many tokens it revoked (already revoked ones are not counted).
    public var revoked: Int64
    /// Its position in the revocation log; 0 when nothing matched and nothing was logged.
    public var seq: Int64

    public init(revoked: Int64, seq: Int64) {
        self.revoked = revoked
        self.seq = seq
    }
}
