import TokendCore

/// Why the process could not start or finish a one-shot command; printed on stderr, exit 1.
/// Its description is the underlying error's safe message (never a secret).
struct StartupError: Error, CustomStringConvertible {
    let description: String

    init(_ error: any Error) {
        if let error = error as? TokendError {
            description = error.message
        } else {
            description = "\(error)"
        }
    }
}
