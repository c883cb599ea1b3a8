import ArgumentParser
import TokendProto

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke tokens by exactly one selector.",
        discussion: """
            --subject and --client revoke every token of theirs issued up to now; later ones stay valid.
            Revoking a refresh token revokes its whole grant.
            Examples:
              tokenctl revoke --token tkd_at_... --reason "leaked in a log"
              echo "$TOKEN" | tokenctl revoke --token -
              tokenctl revoke --subject alice --reason "password reset" --output json
            """
    )
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "A token, or - to read it from standard input.") var token: String?
    @Option(help: "A token's jti.") var jti: String?
    @Option(help: "Every token of this subject issued so far.") var subject: String?
    @Option(help: "Every token issued to this client so far.") var client: String?
    @Option(help: "Every token of this grant.") var grant: String?
    @Option(help: "Why; kept in the revocation log.") var reason: String = ""

    func validate() throws {
        let given = [token, jti, subject, client, grant].compactMap { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --token, --jti, --subject, --client, --grant") }
    }

    func run() async throws {
        var request = Tokend_V1_AdminRevokeRequest()
        if let token { request.token = try resolveToken(token) }
        if let jti { request.jti = jti }
        if let subject { request.subject = subject }
        if let client { request.clientID = client }
        if let grant { request.grantID = grant }
        request.reason = reason
        let r: Tokend_V1_AdminRevokeResponse = try await connection.call("Revoke", request)
        switch connection.output {
        case .json: Output.json(["revoked": r.revoked, "seq": r.seq])
        case .table: Output.fields([("revoked", "\(r.revoked)"), ("seq", r.seq == 0 ? "- (nothing to revoke)" : "\(r.seq)")])
        }
    }
}
