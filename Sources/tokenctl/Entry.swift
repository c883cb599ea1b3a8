import ArgumentParser
import Foundation

/// Runs the command and maps outcomes to SPEC's exit statuses: 0 success, 1 the server refused or
/// failed (or could not be reached), 2 usage error.
@main
enum Entry {
    static func main() async {
        do {
            var command = try Tokenctl.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("tokenctl: \(failure.message)\n".utf8))
            exit(failure.usage ? 2 : 1)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            if Tokenctl.exitCode(for: error) == .success {
                Tokenctl.exit(withError: error)  // --help, --version, completion scripts
            }
            FileHandle.standardError.write(Data((Tokenctl.fullMessage(for: error) + "\n").utf8))
            exit(2)
        }
    }
}

/// A refusal or failure to report on stderr (exit 1), or a configuration problem (exit 2).
struct CommandFailure: Error {
    var message: String
    var usage = false
}
