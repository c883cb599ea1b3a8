import Foundation
import TokendCore
import TokendWire

/// How TokenReview names users and groups: `TOKEND_K8S_USERNAME_PREFIX` / `TOKEND_K8S_GROUPS_PREFIX`.
/// The prefixes keep tokend's names apart from the cluster's own (`system:…`, other authenticators).
public struct KubernetesNaming: Sendable, Equatable {
    public var usernamePrefix: String
    public var groupsPrefix: String

    public init(usernamePrefix: String = "tokend:", groupsPrefix: String = "tokend:") {
        self.usernamePrefix = usernamePrefix
        self.groupsPrefix = groupsPrefix
    }
}

/// The `TokenReview` tokend answers with: `apiVersion`, `kind`, `spec` and `status`.
///
/// `spec` echoes the request's audiences with an empty `token`: no token value ever goes into an
/// answer (SPEC), while Kubernetes clients generated from the OpenAPI schema (the Python client's
/// models, for one) refuse a `TokenReview` without `spec` or a `TokenReviewSpec` without `token`.
struct TokenReviewAnswer: Encodable, Sendable {
    struct Spec: Encodable, Sendable {
        let token = ""
        let audiences: [String]?
    }
    struct User: Encodable, Sendable {
        let username: String
        let uid: String
        let groups: [String]?
        let extra: [String: [String]]
    }
    struct Status: Encodable, Sendable {
        let authenticated: Bool
        let user: User?
        let audiences: [String]?
    }

    let apiVersion = TokenReviewRequest.apiVersion
    let kind = TokenReviewRequest.kind
    let spec: Spec
    let status: Status

    /// `Introspector.review`'s outcome in Kubernetes terms (SPEC): username = prefix + `sub`,
    /// uid = `sub`, groups from the `groups` extra claim (comma-separated, each trimmed, empty ones
    /// dropped, each prefixed), `extra` with the client id, one element per scope, and the `jti`.
    /// Not authenticated: `{"authenticated":false}` and no user.
    init(_ outcome: (record: TokenRecord, audiences: [String])?, requested: [String], naming: KubernetesNaming) {
        spec = Spec(audiences: requested.isEmpty ? nil : requested)
        guard let outcome else {
            status = Status(authenticated: false, user: nil, audiences: nil)
            return
        }
        let (record, audiences) = outcome
        let subject = record.subject ?? ""
        let groups = (record.extra["groups"] ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .map { naming.groupsPrefix + $0 }
        var extra: [String: [String]] = ["tokend.io/client-id": [record.clientID], "tokend.io/jti": [record.jti]]
        let scopes = (record.scope ?? "").split(separator: " ").map(String.init)
        if !scopes.isEmpty { extra["tokend.io/scope"] = scopes }
        status = Status(
            authenticated: true,
            user: User(username: naming.usernamePrefix + subject, uid: subject, groups: groups.isEmpty ? nil : groups, extra: extra),
            audiences: audiences.isEmpty ? nil : audiences
        )
    }
}
