import Foundation
import HTTPTypes
import Hummingbird
import SwiftProtobuf
import TokendCore

/// Registers one Connect unary method: authenticate the caller, decode, call, encode. Every
/// `TokendError` becomes its answer through `ConnectError`'s table, with `challenge` as the
/// `WWW-Authenticate` of an `unauthenticated` answer.
func connectUnary<Input: Message, Output: Message, Caller: Sendable>(
    _ router: Router<TokendRequestContext>,
    _ path: String,
    _ input: Input.Type,
    challenge: String?,
    authenticate: @escaping @Sendable (Request, TokendRequestContext) async throws -> Caller,
    handler: @escaping @Sendable (Input, Caller) async throws -> Output
) {
    router.post(RouterPath(path)) { request, context -> Response in
        do {
            let caller = try await authenticate(request, context)
            let (message, codec) = try await ConnectCodec.decode(Input.self, from: request)
            let output = try await handler(message, caller)
            return try codec.response(output, for: request)
        } catch let error as TokendError {
            throw ConnectError(error, challenge: challenge)
        }
    }
}

/// Answers every other method of the `tokend.v1` services with Connect's `unimplemented` (404), so
/// that a Connect client gets a Connect error, not an OAuth one. The router matches a service it
/// knows by name before any wildcard, so each known service gets its own catch-all as well.
func connectUnknownMethods(_ router: Router<TokendRequestContext>, services: [String]) {
    for path in ["/tokend.v1.*/*"] + services.map({ "/tokend.v1.\($0)/*" }) {
        router.post(RouterPath(path)) { _, _ -> Response in
            throw ConnectError(.unimplemented, "no such method", status: .notFound)
        }
    }
}
