import Foundation
import Testing
import TokendCore
import TokendTestSupport

@Suite struct ProbeTmp {
    @Test(arguments: StoreKind.allCases)
    func nulAudience(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            _ = try await h.client("as", roles: ["issue"])
            do {
                let issued = try await h.issuer.issue(IssueRequest(clientID: "as", audiences: ["a\u{0}b"]))
                print("PROBE \(kind) issued; read back aud:", try await h.store.token(hash: issued.access.hash)?.audiences.map(\.debugDescription) ?? [])
            } catch { print("PROBE \(kind) issue error:", error) }
            do {
                _ = try await h.registry.create(id: "rs", roles: [], audiences: ["x\u{1}y"])
                print("PROBE \(kind) client with control char audience created")
            } catch { print("PROBE \(kind) create error:", error) }
            do {
                let o = try await h.revoker.revoke(.subject("a\u{0}b"), reason: "")
                print("PROBE \(kind) subject NUL revoke:", o)
            } catch { print("PROBE \(kind) subject NUL revoke error:", error) }
        }
    }
}
