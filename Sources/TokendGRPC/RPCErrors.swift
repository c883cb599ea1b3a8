import GRPCCore
import TokendCore

extension RPCError {
    /// The gRPC dialect's one table: every `TokendError` code and its status (SPEC "gRPC listener").
    public init(_ error: TokendError) {
        switch error.code {
        case .invalidRequest: self.init(code: .invalidArgument, message: error.message)
        case .tooLarge: self.init(code: .resourceExhausted, message: error.message)
        case .unauthenticated: self.init(code: .unauthenticated, message: error.message)
        case .missingRole, .notOwner: self.init(code: .permissionDenied, message: error.message)
        case .notFound: self.init(code: .notFound, message: error.message)
        case .alreadyExists: self.init(code: .alreadyExists, message: error.message)
        case .unavailable: self.init(code: .unavailable, message: error.message)
        }
    }
}

/// Runs one RPC's decision, turning a `TokendError` into its gRPC status. Anything else is a bug
/// and becomes `INTERNAL` without detail (no message may carry a token or SQL).
func answering<Output>(_ body: () async throws -> Output) async throws -> Output {
    do {
        return try await body()
    } catch let error as TokendError {
        throw RPCError(error)
    } catch let error as RPCError {
        throw error
    } catch is CancellationError {
        throw RPCError(code: .cancelled, message: "the call was cancelled")
    } catch {
        throw RPCError(code: .internalError, message: "internal error")
    }
}

extension Metadata {
    /// The first `authorization` value (gRPC carries call credentials there, lower-case).
    var authorization: String? {
        self[stringValues: "authorization"].first(where: { _ in true })
    }
}
