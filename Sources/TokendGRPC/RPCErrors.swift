import GRPCCore
import TokendCore

extension RPCError {
    /// The gRPC dialect's one table: every `TokendError` code and its status (SPEC "gRPC listener").
    public init(_ error: TokendError) {
        switch error.code {
        case .invalidRequest: self.init(code: .invalidArgument, message: error.message)
        case .tooLarge: self.init(code: .resourceExhausted, message: error.message)
        case .unauthenticated: self.init(code: .unauthenticated, message: error.message)
        case .missingRole, .notOwner, .unauthorizedClient: self.init(code: .permissionDenied, message: error.message)
        case .invalidGrant, .invalidScope, .invalidTarget, .unsupportedGrantType: self.init(code: .invalidArgument, message: error.message)
        case .outOfRange: self.init(code: .outOfRange, message: error.message)
        case .subscriberTooSlow: self.init(code: .resourceExhausted, message: error.message)
        case .notFound: self.init(code: .notFound, message: error.message)
        case .alreadyExists: self.init(code: .alreadyExists, message: error.message)
        case .unavailable: self.init(code: .unavailable, message: error.message)
        case .tooManyRequests:
            // gRPC has no Retry-After; the trailer carries it for clients that look.
            self.init(code: .resourceExhausted, message: error.message, metadata: ["retry-after": "\(error.retryAfter ?? 60)"])
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

/// The peer's IP address from grpc-swift's `remotePeer` (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`).
func peerAddress(_ context: ServerContext) -> String? {
    let peer = context.remotePeer
    let parts = peer.split(separator: ":", maxSplits: 1)
    guard parts.count == 2, parts[0] == "ipv4" || parts[0] == "ipv6" else { return nil }
    var address = parts[1]
    if let colon = address.lastIndex(of: ":") { address = address[..<colon] }
    if address.hasPrefix("["), address.hasSuffix("]") { address = address.dropFirst().dropLast() }
    return String(address)
}

extension Metadata {
    /// The first `authorization` value (gRPC carries call credentials there, lower-case).
    var authorization: String? {
        self[stringValues: "authorization"].first(where: { _ in true })
    }
}
