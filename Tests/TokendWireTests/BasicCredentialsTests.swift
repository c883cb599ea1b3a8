import Foundation
import Testing

@testable import TokendWire

func parseBasic(_ header: some Collection<UInt8>) throws -> (clientID: String, secret: String) {
    try Array(header).withUnsafeBytes { raw in try BasicCredentials.parse(raw) }
}

func decodeBase64(_ input: some Collection<UInt8>) -> [UInt8]? {
    var output = [UInt8](repeating: 0, count: input.count)
    let count = Array(input).withUnsafeBytes { raw in output.withUnsafeMutableBytes { Base64.decode(raw, into: $0) } }
    return count.map { Array(output.prefix($0)) }
}

@Suite struct BasicCredentialsTests {
    static func header(_ id: String, _ secret: String, scheme: String = "Basic") -> String {
        scheme + " " + Data("\(id):\(secret)".utf8).base64EncodedString()
    }

    @Test func parsesIdAndSecretWithFormDecoding() throws {
        let credentials = try parseBasic(Self.header("my%3Aclient", "s%2Bcr+et:x").utf8)
        #expect(credentials.clientID == "my:client")
        #expect(credentials.secret == "s+cr et:x")
    }

    @Test func schemeIsCaseInsensitiveAndBlanksAroundCredentialsAreIgnored() throws {
        #expect(try parseBasic(Self.header("a", "b", scheme: "bAsIc").utf8).clientID == "a")
        #expect(try parseBasic(("  Basic \t " + Data("a:b".utf8).base64EncodedString() + " \t").utf8).secret == "b")
    }

    @Test func anotherSchemeOrNoCredentialsIsNotBasic() {
        for header in ["Bearer abc", "Basic", "Basic ", "Basicx YTpi", "Basic\tYTpi", "", "   "] {
            #expect(throws: WireError.notBasicScheme, "\(header)") { try parseBasic(header.utf8) }
        }
    }

    @Test func rejectsMalformedCredentials() {
        for header in [
            "Basic YTpi=", "Basic YTp", "Basic Y*pi", "Basic \t ",
            "Basic " + Data("no-colon".utf8).base64EncodedString(),
            "Basic " + Data(":secret".utf8).base64EncodedString(),
            "Basic " + Data("a:%zz".utf8).base64EncodedString(),
            "Basic " + Data([UInt8(ascii: "a"), UInt8(ascii: ":"), 0xFF]).base64EncodedString(),
            "Basic " + String(repeating: "QUFB", count: 600),
        ] {
            #expect(throws: WireError.malformedBasicCredentials, "\(header.prefix(40))") { try parseBasic(header.utf8) }
        }
    }

    @Test func base64MatchesFoundationOnWellFormedInput() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(decodeBase64(Data(bytes).base64EncodedString().utf8) == bytes)
        }
        for bad in ["YQ", "YQ=", "Y===", "====", "YQ=a", "YW-j", "YWJj\n"] {
            #expect(decodeBase64(bad.utf8) == nil, "\(bad)")
        }
    }

    @Test func base64RefusesOutputThatDoesNotFit() {
        var output = [UInt8](repeating: 0, count: 2)
        let count = Array("YWJj".utf8).withUnsafeBytes { raw in output.withUnsafeMutableBytes { Base64.decode(raw, into: $0) } }
        #expect(count == nil)
    }
}

/// Base64 against `Data(base64Encoded:)`, and Basic against a reference on Foundation, over generated input.
@Suite struct BasicCredentialsDifferentialTests {
    static let cases = 10_000

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Mostly the encoding of random bytes, often damaged by one edit; otherwise a short run of
    /// alphabet characters and padding.
    static func base64(_ generator: inout Generator) -> [UInt8] {
        guard generator.chance(60) else {
            return (0..<generator.below(13)).map { _ in generator.chance(20) ? UInt8(ascii: "=") : generator.pick(alphabet) }
        }
        var encoded = Array(Data(generator.bytes(generator.below(40))).base64EncodedString().utf8)
        guard generator.chance(50) else { return encoded }
        let damage: [UInt8] = alphabet + Array("=-_ \n\t*.".utf8) + [0xC3, 0xA9, 0x00]
        switch generator.below(4) {
        case 0 where !encoded.isEmpty: encoded[generator.below(encoded.count)] = generator.pick(damage)
        case 1 where !encoded.isEmpty: encoded.remove(at: generator.below(encoded.count))
        case 2: encoded.insert(generator.pick(damage), at: generator.below(encoded.count + 1))
        default: while encoded.last == UInt8(ascii: "=") { encoded.removeLast() }
        }
        return encoded
    }

    /// `Data(base64Encoded:)`, held to the canonical length and padding of what it decoded:
    /// Foundation accepts extra and misplaced `=` (`fYnV0mQ==`, `eQQ6QeaXpeacrD=5`), RFC 4648 §4 does not.
    static func strictFoundation(_ input: [UInt8]) -> [UInt8]? {
        guard let decoded = Data(base64Encoded: String(decoding: input, as: UTF8.self)) else { return nil }
        let canonical = Array(decoded.base64EncodedString().utf8)
        let padding = { (encoded: [UInt8]) in encoded.reversed().prefix { $0 == UInt8(ascii: "=") }.count }
        guard canonical.count == input.count, padding(canonical) == padding(input) else { return nil }
        return Array(decoded)
    }

    @Test func foundationIsLenientAboutPadding() {
        // Why the reference above holds Foundation to the canonical padding.
        #expect(Data(base64Encoded: "fYnV0mQ==") != nil)
        #expect(Self.strictFoundation(Array("fYnV0mQ==".utf8)) == nil)
        #expect(decodeBase64("fYnV0mQ==".utf8) == nil)
        #expect(decodeBase64("fYnV0mQ=".utf8) == Self.strictFoundation(Array("fYnV0mQ=".utf8)))
    }

    @Test func base64AgreesWithFoundation() {
        var generator = Generator(seed: 4648)
        var accepted = 0
        var rejected = 0
        var disagreements: [String] = []
        for _ in 0..<Self.cases {
            let input = Self.base64(&generator)
            let decoded = decodeBase64(input)
            let expected = Self.strictFoundation(input)
            if decoded == nil { rejected += 1 } else { accepted += 1 }
            if decoded != expected && disagreements.count < 10 {
                disagreements.append(
                    "\(String(decoding: input, as: UTF8.self).debugDescription): \(String(describing: decoded)) vs \(String(describing: expected))"
                )
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
        #expect(accepted > Self.cases / 5 && rejected > Self.cases / 5, "accepted \(accepted), rejected \(rejected)")
    }

    enum Outcome: Equatable {
        case credentials(clientID: [UInt8], secret: [UInt8])
        case notBasic
        case malformed
    }

    /// RFC 7617 as the parser's documentation states it, with Foundation's base64 (held to canonical
    /// padding) and the reference form decoding.
    static func reference(_ header: [UInt8]) -> Outcome {
        let space = UInt8(ascii: " ")
        let trimmed = header.drop { $0 == space }
        let scheme = trimmed.prefix { $0 != space }
        let credentials = trimmed.dropFirst(scheme.count + 1)
        let isBasic = scheme.count == 5 && String(decoding: scheme, as: UTF8.self).lowercased() == "basic"
        guard trimmed.count > scheme.count, !credentials.isEmpty, isBasic else { return .notBasic }
        guard credentials.count <= 2048 else { return .malformed }
        let blanks: Set<UInt8> = [space, UInt8(ascii: "\t")]
        let encoded = credentials.drop { blanks.contains($0) }.reversed().drop { blanks.contains($0) }.reversed()
        guard let decoded = strictFoundation(Array(encoded)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
            let id = referenceFormComponent(decoded[..<colon]), !id.isEmpty,
            let secret = referenceFormComponent(decoded[(colon + 1)...])
        else { return .malformed }
        return .credentials(clientID: Array(id.utf8), secret: Array(secret.utf8))
    }

    /// A header: a scheme (often Basic in some letter case), blanks, the base64 of `id:secret`
    /// built from generated form components (sometimes without a colon, sometimes damaged or too long).
    static func header(_ generator: inout Generator) -> [UInt8] {
        var header = Array(String(repeating: " ", count: generator.chance(10) ? generator.below(3) : 0).utf8)
        if generator.chance(80) {
            header += "basic".utf8.map { generator.chance(50) ? $0 & ~0x20 : $0 }
        } else {
            header += Array(generator.pick(["Bearer", "Basicx", "Basi", "Ba\u{130}ic", "Digest", "", "BASIC\t", "B\u{0}sic"]).utf8)
        }
        if generator.chance(95) { header += Array(generator.pick([" ", " ", " ", "  ", " \t", "\t"]).utf8) }
        var credentials = generator.formComponent(maxAtoms: 3)
        if generator.chance(90) { credentials += [UInt8(ascii: ":")] + generator.formComponent() }
        if generator.chance(2) { credentials += Array(repeating: UInt8(ascii: "a"), count: 1530 + generator.below(12)) }
        var encoded = Array(Data(credentials).base64EncodedString().utf8)
        if generator.chance(10) && !encoded.isEmpty {
            encoded[generator.below(encoded.count)] = generator.pick(Array("=-_*. ".utf8) + [0xC3])
        }
        header += encoded
        if generator.chance(10) { header += Array(generator.pick([" ", "\t", " \t "]).utf8) }
        return header
    }

    @Test func basicAgreesWithAFoundationReference() {
        var generator = Generator(seed: 7617)
        var outcomes: [String: Int] = [:]
        var disagreements: [String] = []
        for _ in 0..<Self.cases {
            let header = Self.header(&generator)
            let parsed: Outcome
            do {
                let (clientID, secret) = try parseBasic(header)
                parsed = .credentials(clientID: Array(clientID.utf8), secret: Array(secret.utf8))
            } catch {
                parsed = error as? WireError == .notBasicScheme ? .notBasic : .malformed
            }
            let expected = Self.reference(header)
            outcomes["\(parsed)".prefix(while: { $0 != "(" }).description, default: 0] += 1
            if parsed != expected && disagreements.count < 10 {
                disagreements.append("\(String(decoding: header.prefix(80), as: UTF8.self).debugDescription): \(parsed) vs \(expected)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
        for outcome in ["credentials", "notBasic", "malformed"] {
            #expect(outcomes[outcome, default: 0] > Self.cases / 20, "\(outcomes)")
        }
    }
}
