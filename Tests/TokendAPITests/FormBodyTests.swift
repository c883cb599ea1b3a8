import Testing
@testable import TokendAPI

@Suite struct FormBodyTests {
    @Test func decodesPlusAndPercentEscapes() throws {
        let form = try FormBody(parsing: Array("token=a%2Bb+c&token_type_hint=access_token".utf8))
        #expect(form["token"] == "a+b c")
        #expect(form["token_type_hint"] == "access_token")
    }

    @Test func rejectsDuplicateParameters() {
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("token=a&token=b".utf8)) }
    }

    @Test func rejectsMalformedPercentEncoding() {
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("token=%zz".utf8)) }
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("token=%4".utf8)) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("token=%ff%fe".utf8)) }
    }
}
