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

@Suite struct FormBodyBytesTests {
    @Test func rawBytesAndCollectionsParseAlike() throws {
        for body in ["token=abc&token_type_hint=access_token", "a=&b", "x=%C3%A9+%2B", "&&token=t&&", ""] {
            let fromBytes = try Array(body.utf8).withUnsafeBytes { try FormBody(bytes: $0) }
            #expect(fromBytes == (try FormBody(parsing: Array(body.utf8))))
            #expect(fromBytes == (try FormBody(parsing: body.utf8)))
        }
        let form = try FormBody(parsing: "x=%C3%A9+%2B&a=&b".utf8)
        #expect(form["x"] == "é +")
        #expect(form["a"] == "")
        #expect(form["b"] == "")
    }

    @Test func rejectsEmptyNamesAndInvalidUTF8WithoutEscapes() {
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("=v".utf8)) }
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: [UInt8(ascii: "t"), UInt8(ascii: "="), 0xFF]) }
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("t=%".utf8)) }
        #expect(throws: FormBody.ParseError.self) { try FormBody(parsing: Array("t=%4".utf8)) }
    }
}
