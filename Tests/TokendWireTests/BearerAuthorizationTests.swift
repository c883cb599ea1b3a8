import Testing

@testable import TokendWire

/// `BearerAuthorization.token`, the reading of `/authz`'s and ext_authz's `Authorization` header
/// (moved here from TokendAPI's `BearerPresentation.init(authorization:)`, unchanged).
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

    @Test func noHeaderOrAnotherSchemeIsNoToken() {
        #expect(BearerAuthorization.token(nil) == nil)
        #expect(BearerAuthorization.token("") == nil)
        #expect(BearerAuthorization.token("Basic cnM6c2VjcmV0") == nil)
        #expect(BearerAuthorization.token("Bearerabc") == nil)
        #expect(BearerAuthorization.token("Bearer\tabc") == nil)
        #expect(BearerAuthorization.token("abc") == nil)
    }
}
