import ArgumentParser

struct Tokenctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenctl",
        abstract: "Operate a tokend cluster through its admin API.",
        discussion: """
            tokenctl talks to the admin listener (TOKENCTL_SERVER, default http://127.0.0.1:8081) with the \
            admin token (TOKENCTL_ADMIN_TOKEN or --admin-token). Against a loopback server it finds the \
            token a dev-mode tokend generated in $TOKEND_DATA_DIR/admin-token or ./.tokend/admin-token.
            Exit status: 0 success, 1 the server refused or failed, 2 usage error.
            Shell completion: tokenctl --generate-completion-script bash|zsh|fish
            """,
        version: "0.1.0",
        subcommands: [Clients.self, Tokens.self, Revoke.self, Revocations.self, Audit.self, Keys.self, Status.self]
    )
}
