import Foundation
import GRPCCore
import TokendClient
import TokendCore
import TokendProto

/// `TOKEND_REVOCATION_UPSTREAM`: another tokend's revocation stream (TokendClient's
/// `RevocationStream`), as entries of the log for this replica's feed.
struct GRPCRevocationUpstream: RevocationUpstream {
    let stream: RevocationStream

    var name: String { stream.upstream.description }

    func follow(
        after seq: Int64,
        connected: @escaping @Sendable () -> Void,
        receive: @escaping @Sendable (RevocationEntry) async throws -> Void
    ) async throws {
        try await stream.follow(after: seq, connected: connected) { event in
            try await receive(try RevocationEntry(event))
        }
    }

    func isOutOfRange(_ error: any Error) -> Bool {
        (error as? RPCError)?.code == .outOfRange
    }
}

/// An event the upstream sent that this version cannot apply: the stream is dropped (and the log
/// read directly) rather than an entry skipped.
struct UnreadableRevocationEvent: Error, CustomStringConvertible {
    let description: String
}

extension RevocationEntry {
    /// The inverse of `Tokend_V1_RevocationEvent(entry)`: times are whole seconds, which loses
    /// nothing a verdict uses (subject and client cutoffs are compared in whole seconds).
    init(_ event: Tokend_V1_RevocationEvent) throws {
        guard let kind = RevocationEntry.Kind(rawValue: event.kind) else {
            throw UnreadableRevocationEvent(description: "revocation event \(event.seq) has an unknown kind")
        }
        var hashes: [TokenHash] = []
        hashes.reserveCapacity(event.tokenHashes.count)
        for data in event.tokenHashes {
            guard let hash = TokenHash(validating: [UInt8](data)) else {
                throw UnreadableRevocationEvent(description: "revocation event \(event.seq) has a token hash that is not 32 bytes")
            }
            hashes.append(hash)
        }
        self.init(
            seq: event.seq,
            kind: kind,
            value: event.selector,
            tokenHashes: hashes,
            reason: "",
            revokedCount: Int64(hashes.count),
            createdAt: Date(timeIntervalSince1970: TimeInterval(event.issuedBefore)),
            expiresAt: Date(timeIntervalSince1970: TimeInterval(event.expiresAt))
        )
    }
}
