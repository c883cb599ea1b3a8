import ArgumentParser

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit trail of admin actions.", subcommands: [List.self])
}
