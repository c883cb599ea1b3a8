// Fuzz target: TokenReviewRequest, the body of `POST /apis/authentication.k8s.io/v1/tokenreviews`
// (Foundation's JSONDecoder over Codable structs, then the v1 TokenReview rules). Properties:
// - a refusal is one of the fixed messages (the body is never quoted);
// - an accepted request has a token, and Foundation's other JSON parser (JSONSerialization) reads
//   the body as JSON, with the same kind, apiVersion and spec.token;
// - an accepted request written out again (`json`, by TokendWire's JSONWriter) parses to the same
//   request, and JSONSerialization reads that as JSON too (the writer's escaping of any token or
//   audience).
import Foundation

private let messages: Set<String> = Set(
    [TokenReviewError.notATokenReview, .wrongKind, .wrongAPIVersion, .noToken, .ambiguous].map(\.description)
)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenReview(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Data(bytes: data, count: size)
    let review: TokenReviewRequest
    do {
        review = try TokenReviewRequest(json: body)
    } catch {
        require(messages.contains(error.description), "an unknown refusal: \(error.description)")
        return 0
    }
    require(!review.token.isEmpty, "an empty token was accepted")

    // JSONSerialization: the same members. The findings, in this property: JSONDecoder does not
    // check the members it skips (bytes that are not UTF-8, raw control characters in a string),
    // where JSONSerialization refuses the body; and of a member given twice ("spec"), JSONDecoder
    // read the first and JSONSerialization the last. The parser now refuses a body the two read
    // differently.
    let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
    require(object != nil, "JSONSerialization refuses an accepted body")
    guard let object else { return 0 }
    require(object["kind"] as? String == TokenReviewRequest.kind, "JSONSerialization reads another kind")
    require(object["apiVersion"] as? String == TokenReviewRequest.apiVersion, "JSONSerialization reads another apiVersion")
    require((object["spec"] as? [String: Any])?["token"] as? String == review.token, "JSONSerialization reads another spec.token")

    let written = Data(review.json)
    let again = try? TokenReviewRequest(json: written)
    require(again == review, "the written request \(String(decoding: written, as: UTF8.self).debugDescription) parses to \(String(describing: again))")
    let reread = try? JSONSerialization.jsonObject(with: written) as? [String: Any]
    require((reread?["spec"] as? [String: Any])?["token"] as? String == review.token, "JSONSerialization reads the written token differently")
    require(((reread?["spec"] as? [String: Any])?["audiences"] as? [String] ?? []) == review.audiences, "JSONSerialization reads the written audiences differently")
    return 0
}
