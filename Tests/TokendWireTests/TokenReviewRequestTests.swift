import Foundation
import Testing

@testable import TokendWire

private func review(_ json: String) throws(TokenReviewError) -> TokenReviewRequest {
    try TokenReviewRequest(json: Data(json.utf8))
}

private let head = #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","#

@Suite struct TokenReviewRequestTests {
    @Test func readsTheTokenAndAudiencesAndIgnoresTheRest() throws {
        let parsed = try review(
            head + #""metadata":{"creationTimestamp":null},"spec":{"token":"t\u00e9","audiences":["a","b"]},"status":{"user":{}}}"#
        )
        #expect(parsed == TokenReviewRequest(token: "té", audiences: ["a", "b"]))
        #expect(try review(head + #""spec":{"token":"t","audiences":null}}"#).audiences == [])
    }

    @Test func refusalsNameTheRuleAndNeverQuoteTheBody() {
        for (json, error) in [
            ("[1,2", TokenReviewError.notATokenReview), (#"{"kind":1}"#, .notATokenReview), (#"{"kind":"Status"}"#, .wrongKind),
            (#"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"t"}}"#, .wrongAPIVersion),
            (head + #""spec":{}}"#, .noToken), (head + #""spec":{"token":""}}"#, .noToken),
        ] {
            #expect(throws: error, "\(json)") { try review(json) }
        }
    }

    @Test func theWrittenRequestParsesToTheSameRequest() throws {
        for request in [
            TokenReviewRequest(token: "t\"\\\u{1}\n é 🙂"), TokenReviewRequest(token: "t", audiences: ["https://k", "\u{7F}"]),
        ] {
            #expect(try TokenReviewRequest(json: Data(request.json)) == request)
        }
    }
}
