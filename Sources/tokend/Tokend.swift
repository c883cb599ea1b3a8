import ArgumentParser

@main
struct Tokend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokend",
        abstract: "Token introspection (RFC 7662) and revocation (RFC 7009) service.",
        subcommands: [Serve.self, Migrate.self, GC.self],
        defaultSubcommand: Serve.self
    )
}
