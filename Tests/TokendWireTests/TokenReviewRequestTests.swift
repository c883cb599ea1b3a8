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

    // Found by the token_review fuzz target: JSONDecoder reads the first of a member given twice
    // (JSONSerialization the last), and does not check the members it skips.

    @Test func aMemberGivenTwiceIsRefused() throws {
        #expect(throws: TokenReviewError.ambiguous) { try review(head + #""spec":{"token":"a"},"spec":{}}"#) }
        #expect(throws: TokenReviewError.ambiguous) { try review(head + #""spec":{"token":"a","token":"b"}}"#) }
        #expect(throws: TokenReviewError.ambiguous) { try review(head + #""spec":{"token":"a"},"kind":"Status"}"#) }
        // The same value twice reads alike either way.
        #expect(try review(head + #""spec":{"token":"a"},"spec":{"token":"a"}}"#).token == "a")
    }

    @Test func aBodyThatIsNotJSONInAnIgnoredMemberIsRefused() {
        let notUTF8 = Data((head + #""spec":{"token":"t"},"status":""#).utf8) + Data([0xFF]) + Data(#""}"#.utf8)
        #expect(throws: TokenReviewError.notATokenReview) { try TokenReviewRequest(json: notUTF8) }
        #expect(throws: TokenReviewError.notATokenReview) { try review(head + "\"spec\":{\"token\":\"t\"},\"status\":\"\u{0}\"}") }
    }

    @Test func theWrittenRequestParsesToTheSameRequest() throws {
        for request in [
            TokenReviewRequest(token: "t\"\\\u{1}\n é 🙂"), TokenReviewRequest(token: "t", audiences: ["https://k", "\u{7F}"]),
        ] {
            #expect(try TokenReviewRequest(json: Data(request.json)) == request)
        }
    }
}
