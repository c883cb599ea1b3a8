import Foundation

/// An `authentication.k8s.io/v1` `TokenReview` as kube-apiserver's webhook token authenticator
/// posts it: `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":…,"audiences":[…]}}`.
/// Other members (`metadata`, an empty `status`) are ignored. Foundation only, so that the fuzzer
/// can build it; `TokendAPI`'s `TokenReviewController` serves it.
public struct TokenReviewRequest: Sendable, Equatable {
    public static let apiVersion = "authentication.k8s.io/v1"
    public static let kind = "TokenReview"

    public let token: String
    /// `spec.audiences`: the API server's audiences (empty: none asked for).
    public let audiences: [String]

    public init(token: String, audiences: [String] = []) {
        self.token = token
        self.audiences = audiences
    }

    /// Parses a request body; anything but a v1 `TokenReview` with a `spec.token` is a
    /// `TokenReviewError`, with a message that never quotes the body.
    public init(json body: Data) throws(TokenReviewError) {
        struct Wire: Decodable {
            struct Spec: Decodable {
                let token: String?
                let audiences: [String]?
            }
            let apiVersion: String?
            let kind: String?
            let spec: Spec?
        }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: body)
        } catch {
            throw .notATokenReview
        }
        guard wire.kind == Self.kind else { throw .wrongKind }
        guard wire.apiVersion == Self.apiVersion else { throw .wrongAPIVersion }
        guard let token = wire.spec?.token, !token.isEmpty else { throw .noToken }
        // JSONDecoder reads the first of a member given twice and does not check the members it
        // skips; JSONSerialization reads the last, and checks all of RFC 8259. A body the two read
        // differently is ambiguous, and refused. (The token_review fuzz target found both.)
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw .notATokenReview }
        let spec = object["spec"] as? [String: Any]
        guard object["kind"] as? String == wire.kind, object["apiVersion"] as? String == wire.apiVersion,
            spec?["token"] as? String == token, spec?["audiences"] as? [String] == wire.spec?.audiences
        else { throw .ambiguous }
        self.token = token
        self.audiences = wire.spec?.audiences ?? []
    }

    /// The request as kube-apiserver would send it: `apiVersion`, `kind`, `spec.token` and
    /// `spec.audiences` (left out when empty). It parses to the same request.
    public var json: [UInt8] {
        var json = JSONWriter(capacity: 96 + token.utf8.count)
        json.beginObject()
        json.field("apiVersion", string: Self.apiVersion)
        json.field("kind", string: Self.kind)
        json.fieldKey("spec")
        json.beginObject()
        json.field("token", string: token)
        if !audiences.isEmpty { json.field("audiences", strings: audiences) }
        json.endObject()
        json.endObject()
        return json.bytes
    }
}

/// Why a `TokenReview` request was refused: a fixed message per rule, never quoting the body.
public struct TokenReviewError: Error, Equatable, CustomStringConvertible {
    public let description: String

    private init(_ description: String) {
        self.description = description
    }

    public static let notATokenReview = TokenReviewError("the body must be a JSON authentication.k8s.io/v1 TokenReview object")
    public static let wrongKind = TokenReviewError("kind must be TokenReview")
    public static let wrongAPIVersion = TokenReviewError(
        "apiVersion must be authentication.k8s.io/v1 (kube-apiserver: --authentication-token-webhook-version=v1)"
    )
    public static let noToken = TokenReviewError("spec.token is required")
    public static let ambiguous = TokenReviewError("the TokenReview gives a member more than once")
}
