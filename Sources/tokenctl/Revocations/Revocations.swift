import ArgumentParser

struct Revocations: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the revocation log.", subcommands: [List.self])
}
