import Foundation
import HTTPTypes
import NIOCore
import Testing
@testable import TokendAPI
import TokendCore
import HummingbirdCore

/// The hand-written parts of the wire format: the introspection JSON writer, Basic credentials,
/// base64, media types and form bodies given as raw bytes.
@Suite struct IntrospectionJSONTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func record(extra: [String: String] = [:], username: String? = "alice", confirmation: TokendCore.Confirmation? = nil) -> TokenRecord {
        TokenRecord(
            hash: TokenHash(token: "tkd_at_x"), kind: .access, clientID: "app", subject: "user-1", username: username,
            scope: "read write", audiences: ["api", "other"], issuer: "https://issuer.example", issuedAt: t0,
            notBefore: t0.addingTimeInterval(-5), expiresAt: t0.addingTimeInterval(3600), jti: "jti-1", grantID: "g-1",
            confirmation: confirmation, extra: extra)
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
        #expect(json == #"{"active":true,"aud":["api","other"],"client_id":"app","exp":1800003600,"iat":1800000000,"#
            + #""iss":"https://issuer.example","jti":"jti-1","nbf":1799999995,"scope":"read write","sub":"user-1","#
            + #""token_type":"Bearer","username":"alice"}"#)
    }

    @Test func matchesWhatJSONSerializationReadsForEveryValue() throws {
        let nasty = "q\"uote \\ back /slash \u{0} nul \u{1F} us \n\r\t\u{8}\u{C} é 日本 🎉 \u{7F} \u{2028}"
        let record = Self.record(
            extra: ["tenant": nasty, "a_first": "1", "zz": "", "active": "shadow", "grant_id": "shadow", "ümlaut": "x"],
            username: nasty, confirmation: TokendCore.Confirmation(jkt: "jkt\"value", x5tS256: nil))
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

    @Test func escapesControlCharactersQuotesAndBackslashes() {
        var writer = JSONWriter()
        writer.beginObject()
        writer.member("k", string: "a\"b\\c\u{1}\n\t\u{8}\u{C}\r/é")
        writer.member("n", int: -42)
        writer.member("m", int: Int64.min)
        writer.member("e", strings: [])
        writer.endObject()
        #expect(Self.string(writer.buffer) == #"{"k":"a\"b\\c\u0001\n\t\b\f\r/é","n":-42,"m":-9223372036854775808,"e":[]}"#)
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

@Suite struct BasicCredentialsTests {
    func basic(_ id: String, _ secret: String, scheme: String = "Basic") -> String {
        scheme + " " + Data("\(id):\(secret)".utf8).base64EncodedString()
    }

    @Test func parsesIdAndSecretWithFormDecoding() throws {
        let c = try ClientAuthentication.basic(basic("my%3Aclient", "s%2Bcr+et:x"))
        #expect(c.clientID == "my:client")
        #expect(c.secret == "s+cr et:x")
    }

    @Test func schemeIsCaseInsensitiveAndBlanksAroundCredentialsAreIgnored() throws {
        #expect(try ClientAuthentication.basic(basic("a", "b", scheme: "bAsIc")).clientID == "a")
        let padded = "Basic \t " + Data("a:b".utf8).base64EncodedString() + " \t"
        #expect(try ClientAuthentication.basic(padded).secret == "b")
    }

    @Test func rejectsOtherSchemesAndMalformedCredentials() {
        for header in ["Bearer abc", "Basic", "Basic ", "Basicx YTpi", "Basic YTpi=", "Basic YTp", "Basic Y*pi",
                       "Basic " + Data("no-colon".utf8).base64EncodedString(), "Basic " + Data(":secret".utf8).base64EncodedString(),
                       "Basic " + Data("a:%zz".utf8).base64EncodedString(), "Basic " + String(repeating: "QUFB", count: 600)] {
            #expect("\(header.prefix(40))") { try ClientAuthentication.basic(header) } throws: { error in
                (error as? TokendError)?.code == .unauthenticated
            }
        }
    }

    @Test func base64MatchesFoundationOnWellFormedInput() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let encoded = Array(Data(bytes).base64EncodedString().utf8)
            var out = [UInt8](repeating: 0, count: 64)
            let n = encoded.withUnsafeBytes { input in out.withUnsafeMutableBytes { Base64.decode(input, into: $0) } }
            #expect(n == length)
            #expect(Array(out.prefix(n ?? 0)) == bytes)
        }
        var out = [UInt8](repeating: 0, count: 8)
        for bad in ["YQ", "YQ=", "Y===", "====", "YQ=a", "YW-j", "YWJj\n"] {
            let n = Array(bad.utf8).withUnsafeBytes { input in out.withUnsafeMutableBytes { Base64.decode(input, into: $0) } }
            #expect(n == nil, "\(bad)")
        }
    }

    @Test func mediaTypesIgnoreParametersCaseAndBlanks() {
        #expect(MediaType.is("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"))
        #expect(MediaType.is(" Application/X-WWW-Form-Urlencoded ; charset=UTF-8", "application/x-www-form-urlencoded"))
        #expect(!MediaType.is("application/x-www-form-urlencodedx", "application/x-www-form-urlencoded"))
        #expect(!MediaType.is("", "application/proto"))
        #expect(!MediaType.is(nil, "application/proto"))
        #expect(MediaType.is("application/proto", "application/proto"))
        #expect(!MediaType.is("application/json", "application/proto"))
    }
}
