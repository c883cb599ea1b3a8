import ArgumentParser
import Foundation
import TokendCore
import TokendServer

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete expired tokens and revocation entries that can no longer matter."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let logger = global.bootstrapLogging()
        try await withStoreBackend(global.store, logger: logger) { backend in
            let deleted = try await backend.store.deleteExpired(before: Date())
            print("deleted \(deleted) expired tokens")
        }
    }
}
