import Testing

@testable import TokendWire

/// `BearerAuthorization.token`, the reading of `/authz`'s and ext_authz's `Authorization` header
/// (moved here from TokendAPI's `BearerPresentation.init(authorization:)`).
@Suite struct BearerAuthorizationTests {
    @Test func theSchemeInAnyCaseThenTheToken() {
        #expect(BearerAuthorization.token("Bearer abc") == "abc")
        #expect(BearerAuthorization.token("bearer abc") == "abc")
        #expect(BearerAuthorization.token("BEARER abc") == "abc")
        #expect(BearerAuthorization.token("  Bearer   abc  ") == "abc")
        #expect(BearerAuthorization.token("Bearer a b") == "a b")
    }

    @Test func bearerWithNothingAfterItIsTheEmptyToken() {
        #expect(BearerAuthorization.token("Bearer") == "")
        #expect(BearerAuthorization.token("Bearer   ") == "")
    }

    /// Found by check_request's property (a byte-level reading agrees), on a hand-made input: read by
    /// `Character`, the space and a combining mark after it were one character, so the scheme ran on
    /// to the end and the header presented no token at all.
    @Test func theSchemeEndsAtASpaceWhateverFollowsIt() {
        #expect(BearerAuthorization.token("Bearer \u{301}abc") == "\u{301}abc")
        #expect(BearerAuthorization.token("Bearer  \u{301}") == "\u{301}")
        #expect(BearerAuthorization.token("Bearer abc \u{301}") == "abc \u{301}")
        #expect(BearerAuthorization.token("Bearer\u{301} abc") == nil)
        #expect(BearerAuthorization.token(" \u{301}Bearer abc") == nil)
        #expect(BearerAuthorization.token("Be\u{301}arer abc") == nil)
    }

    @Test func noHeaderOrAnotherSchemeIsNoToken() {
        #expect(BearerAuthorization.token(nil) == nil)
        #expect(BearerAuthorization.token("") == nil)
        #expect(BearerAuthorization.token("Basic cnM6c2VjcmV0") == nil)
        #expect(BearerAuthorization.token("Bearerabc") == nil)
        #expect(BearerAuthorization.token("Bearer\tabc") == nil)
        #expect(BearerAuthorization.token("abc") == nil)
        #expect(BearerAuthorization.token("   ") == nil)
        #expect(BearerAuthorization.token("Bearers abc") == nil)
        #expect(BearerAuthorization.token("Bear abc") == nil)
        #expect(BearerAuthorization.token("Bearer") == "")
    }
}
