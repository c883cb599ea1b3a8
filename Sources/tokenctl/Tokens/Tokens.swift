import ArgumentParser

struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue and introspect tokens.",
        subcommands: [Issue.self, Introspect.self]
    )
}
