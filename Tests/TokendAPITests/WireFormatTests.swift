import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import Testing
import TokendCore

@testable import TokendAPI

/// The introspection response body (RFC 7662 §2.2) as `IntrospectionJSON` renders it with
/// TokendWire's `JSONWriter`, and the `invalid_client` descriptions of Basic authentication.
@Suite struct IntrospectionJSONTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func record(extra: [String: String] = [:], username: String? = "alice", confirmation: TokendCore.Confirmation? = nil) -> TokenRecord {
        TokenRecord(
            hash: TokenHash(token: "tkd_at_x"),
            kind: .access,
            clientID: "app",
            subject: "user-1",
            username: username,
            scope: "read write",
            audiences: ["api", "other"],
            issuer: "https://issuer.example",
            issuedAt: t0,
            notBefore: t0.addingTimeInterval(-5),
            expiresAt: t0.addingTimeInterval(3600),
            jti: "jti-1",
            grantID: "g-1",
            confirmation: confirmation,
            extra: extra
        )
    }

    static func string(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

    static func object(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    @Test func inactiveIsExactlyActiveFalse() {
        #expect(Self.string(IntrospectionJSON.body(.inactive)) == #"{"active":false}"#)
    }

    @Test func activeHasEveryClaimInSortedOrder() {
        let json = Self.string(IntrospectionJSON.body(.active(Self.record())))
        #expect(
            json == #"{"active":true,"aud":["api","other"],"client_id":"app","exp":1800003600,"iat":1800000000,"#
                + #""iss":"https://issuer.example","jti":"jti-1","nbf":1799999995,"scope":"read write","sub":"user-1","#
                + #""token_type":"Bearer","username":"alice"}"#
        )
    }

    @Test func matchesWhatJSONSerializationReadsForEveryValue() throws {
        let nasty = "q\"uote \\ back /slash \u{0} nul \u{1F} us \n\r\t\u{8}\u{C} é 日本 🎉 \u{7F} \u{2028}"
        let record = Self.record(
            extra: ["tenant": nasty, "a_first": "1", "zz": "", "active": "shadow", "grant_id": "shadow", "ümlaut": "x"],
            username: nasty,
            confirmation: TokendCore.Confirmation(jkt: "jkt\"value", x5tS256: nil)
        )
        let object = try Self.object(IntrospectionJSON.body(.active(record)))
        #expect(object["username"] as? String == nasty)
        #expect(object["tenant"] as? String == nasty)
        #expect(object["a_first"] as? String == "1")
        #expect(object["zz"] as? String == "")
        #expect(object["ümlaut"] as? String == "x")
        // Registered names are never shadowed by extra claims; grant_id is not an RFC 7662 member.
        #expect(object["active"] as? Bool == true)
        #expect(object["grant_id"] == nil)
        #expect(object["token_type"] as? String == "DPoP")
        #expect((object["cnf"] as? [String: String]) == ["jkt": "jkt\"value"])
        #expect(object["exp"] as? Int == 1_800_003_600)
        #expect((object["aud"] as? [String]) == ["api", "other"])
    }

    @Test func omitsUnsetClaims() throws {
        var record = Self.record(username: nil)
        record.scope = nil
        record.subject = nil
        record.notBefore = nil
        record.audiences = []
        record.kind = .refresh
        let object = try Self.object(IntrospectionJSON.body(.active(record)))
        #expect(Set(object.keys) == ["active", "client_id", "exp", "iat", "iss", "jti"])
    }

    @Test func responseCarriesNoStore() {
        let response = IntrospectionJSON.response(.inactive)
        #expect(response.headers[.cacheControl] == "no-store")
        #expect(response.headers[.contentType] == "application/json")
    }
}

/// `client_secret_basic`: the parsing is TokendWire's (and tested there); what is left here is
/// which `invalid_client` description each failure gets.
@Suite struct BasicClientAuthenticationTests {
    @Test func parsesCredentials() throws {
        let credentials = try ClientAuthentication.basic("Basic " + Data("my%3Aclient:s+cret".utf8).base64EncodedString())
        #expect(credentials.clientID == "my:client")
        #expect(credentials.secret == "s cret")
    }

    @Test func anotherSchemeAsksForBasic() {
        for header in ["Bearer abc", "Basic", "Basic ", "Basicx YTpi"] {
            #expect("\(header)") { try ClientAuthentication.basic(header) } throws: { error in
                error as? TokendError == TokendError(.unauthenticated, "use HTTP Basic client authentication")
            }
        }
    }

    @Test func malformedCredentialsAreSaidToBe() {
        for header in [
            "Basic YTpi=", "Basic Y*pi", "Basic " + Data(":secret".utf8).base64EncodedString(),
            "Basic " + Data("a:%zz".utf8).base64EncodedString(), "Basic " + String(repeating: "QUFB", count: 600),
        ] {
            #expect("\(header.prefix(40))") { try ClientAuthentication.basic(header) } throws: { error in
                error as? TokendError == TokendError(.unauthenticated, "malformed Basic credentials")
            }
        }
    }
}

/// `HTTPFields.value(_:)`, the fast path's read of a field: what the subscript reads, for no field,
/// one, a repeated one (joined) and `Cookie` (joined with "; ").
@Suite struct HTTPFieldsValueTests {
    @Test func readsWhatTheSubscriptReads() throws {
        var fields = HTTPFields()
        fields.append(HTTPField(name: .contentType, value: "application/x-www-form-urlencoded"))
        fields.append(HTTPField(name: .accept, value: "application/json"))
        fields.append(HTTPField(name: .accept, value: "application/token-introspection+jwt"))
        fields.append(HTTPField(name: .cookie, value: "a=1"))
        fields.append(HTTPField(name: .cookie, value: "b=2"))
        fields.append(HTTPField(name: try #require(HTTPField.Name("X-Empty")), value: ""))
        let names: [HTTPField.Name] = [.contentType, .accept, .cookie, .authorization, try #require(HTTPField.Name("x-empty"))]
        for name in names {
            #expect(fields.value(name) == fields[name], "\(name)")
        }
        #expect(fields.value(.contentType) == "application/x-www-form-urlencoded")
        #expect(fields.value(.accept) == "application/json, application/token-introspection+jwt")
        #expect(fields.value(.cookie) == "a=1; b=2")
        #expect(fields.value(.authorization) == nil)
        #expect(fields.value(try #require(HTTPField.Name("X-EMPTY"))) == "")
    }
}
