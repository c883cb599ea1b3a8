import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TokendCore
import TokendWire

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: Kubernetes webhook token authentication
/// (SPEC "Public listener"), so that kube-apiserver accepts tokens issued here and stops the moment
/// they are revoked. Parses the `TokenReview`, authenticates the caller (`client_secret_basic`),
/// makes one `Introspector.review` call and renders the `TokenReview` answer; every refusal is a
/// `meta/v1` `Status` through `KubernetesStatus`'s table.
struct TokenReviewController: Sendable {
    let authenticator: ClientAuthenticator
    let introspector: Introspector
    let naming: KubernetesNaming

    static let path = "/apis/authentication.k8s.io/v1/tokenreviews"

    func register(on router: Router<TokendRequestContext>) {
        router.post(RouterPath(Self.path), use: kubernetes(review))
        for method in [HTTPRequest.Method.get, .put, .patch, .delete] {
            router.on(RouterPath(Self.path), method: method) { _, _ -> Response in
                throw KubernetesStatus(status: .methodNotAllowed, reason: "MethodNotAllowed", message: "use POST", headers: [.allow: "POST"])
            }
        }
    }

    /// Parse → authenticate → `Introspector.review` → render. Inactive tokens are `200` with
    /// `status.authenticated: false`.
    @Sendable func review(_ request: Request, context: TokendRequestContext) async throws -> Response {
        let body = try await RequestBody.collect(request)
        let review: TokenReviewRequest
        do {
            review = try TokenReviewRequest(json: Data(body.readableBytesView))
        } catch {
            throw TokendError.invalidRequest(error.description)
        }
        let caller = try await ClientAuthentication.authenticateBasic(request, with: authenticator, context: context)
        let outcome = try await introspector.review(review.token, caller: caller, audiences: review.audiences)
        return JSONBody.response(TokenReviewAnswer(outcome, requested: review.audiences, naming: naming))
    }

    /// Renders every Core error of `handler` through the Kubernetes table.
    private func kubernetes(
        _ handler: @escaping @Sendable (Request, TokendRequestContext) async throws -> Response
    ) -> @Sendable (Request, TokendRequestContext) async throws -> Response {
        { request, context in
            do {
                return try await handler(request, context)
            } catch let error as TokendError {
                throw KubernetesStatus(error)
            }
        }
    }
}
