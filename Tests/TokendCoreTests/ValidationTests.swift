import Testing

@testable import TokendCore

/// Expects `body` to throw `TokendError.invalidRequest`.
func expectInvalidRequest(_ label: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("\(label): accepted", sourceLocation: sourceLocation)
    } catch let error as TokendError {
        #expect(error.code == .invalidRequest, "\(label): \(error.message)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(label): \(String(reflecting: error))", sourceLocation: sourceLocation)
    }
}

@Suite struct ScopeValidationTests {
    @Test(arguments: [
        "read",
        "read write",
        "openid profile email offline_access",
        "urn:example:scope https://api.example.com/orders.read",
        "!#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}~",
        "A-Z",
        String(repeating: "a", count: Validation.maximumFieldLength),
    ])
    func acceptsRFC6749ScopeTokens(scope: String) throws {
        try Validation.scope(scope)
    }

    @Test(arguments: [
        ("empty", ""),
        ("single space", " "),
        ("leading space", " read"),
        ("trailing space", "read "),
        ("double space", "read  write"),
        ("double quote", "read\"write"),
        ("backslash", "read\\write"),
        ("tab", "read\twrite"),
        ("newline", "read\nwrite"),
        ("DEL", "read\u{7F}"),
        ("NUL", "read\u{0}"),
        ("non-ASCII", "lecture-é"),
        ("non-breaking space", "read\u{A0}write"),
        ("too long", String(repeating: "a", count: Validation.maximumFieldLength + 1)),
    ])
    func rejectsEverythingElse(label: String, scope: String) {
        expectInvalidRequest(label) { try Validation.scope(scope) }
    }
}

@Suite struct ClientIDValidationTests {
    @Test(arguments: [
        "a", "app", "app-1", "App_2", "rs.example.com", "urn:tokend:client", "svc@team", "til~de", "0123456789",
        String(repeating: "x", count: ClientRegistry.maximumIDLength),
    ])
    func acceptsTheAllowedAlphabet(id: String) throws {
        try ClientRegistry.validate(clientID: id)
    }

    @Test(arguments: [
        "", " ", "a b", "a/b", "a\\b", "a+b", "a=b", "a%20b", "a#b", "a?b", "a,b", "a\"b", "a'b", "a\nb", "a\u{0}b",
        "clïent", "клиент",
        String(repeating: "x", count: ClientRegistry.maximumIDLength + 1),
    ])
    func rejectsEverythingElse(id: String) {
        expectInvalidRequest("client_id \(id.debugDescription.prefix(40))") { try ClientRegistry.validate(clientID: id) }
    }
}

@Suite struct FieldValidationTests {
    @Test func audiences() throws {
        try Validation.audiences([])
        try Validation.audiences(["api", "https://api.example.com/", String(repeating: "a", count: 512)])
        try Validation.audiences((0..<32).map { "aud-\($0)" })
        expectInvalidRequest("33 audiences") { try Validation.audiences((0..<33).map { "aud-\($0)" }) }
        expectInvalidRequest("empty audience") { try Validation.audiences(["api", ""]) }
        expectInvalidRequest("space") { try Validation.audiences(["my api"]) }
        expectInvalidRequest("newline") { try Validation.audiences(["api\n"]) }
        expectInvalidRequest("513 bytes") { try Validation.audiences([String(repeating: "a", count: 513)]) }
        // 512 bytes is the limit, not 512 characters.
        expectInvalidRequest("300 two-byte characters") { try Validation.audiences([String(repeating: "é", count: 300)]) }
    }

    @Test func text() throws {
        try Validation.text("", field: "f")
        try Validation.text("Zoë \"quoted\" ☃", field: "f")
        try Validation.text(String(repeating: "a", count: Validation.maximumFieldLength), field: "f")
        expectInvalidRequest("too long") { try Validation.text(String(repeating: "a", count: Validation.maximumFieldLength + 1), field: "f") }
        expectInvalidRequest("newline") { try Validation.text("a\nb", field: "f") }
        expectInvalidRequest("carriage return") { try Validation.text("a\rb", field: "f") }
        expectInvalidRequest("NUL") { try Validation.text("a\u{0}b", field: "f") }
        expectInvalidRequest("escape") { try Validation.text("a\u{1B}[31m", field: "f") }
        expectInvalidRequest("DEL") { try Validation.text("a\u{7F}", field: "f") }
    }

    @Test func errorMessagesNameTheField() {
        do {
            try Validation.text("a\nb", field: "subject")
            Issue.record("accepted")
        } catch {
            #expect((error as? TokendError)?.message.contains("subject") == true)
        }
    }
}
