import Testing

@testable import TokendWire

@Suite struct MediaTypeTests {
    @Test func ignoresParametersLetterCaseAndBlanks() {
        #expect(MediaType.is("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"))
        #expect(MediaType.is(" Application/X-WWW-Form-Urlencoded ; charset=UTF-8", "application/x-www-form-urlencoded"))
        #expect(MediaType.is("\tapplication/proto\t", "application/proto"))
        #expect(!MediaType.is("application/x-www-form-urlencodedx", "application/x-www-form-urlencoded"))
        #expect(!MediaType.is("", "application/proto"))
        #expect(!MediaType.is(nil, "application/proto"))
        #expect(!MediaType.is("application/json", "application/proto"))
    }

    @Test func foldsOnlyASCIILetters() {
        // U+212A KELVIN SIGN lower-cases to "k" in Unicode; it is not a "k" in a media type.
        #expect(!MediaType.is("text/mar\u{212A}down", "text/markdown"))
        #expect(!MediaType.is("\u{A0}application/json", "application/json"))
    }
}

/// MediaType against a split / trim / lower-case reference over generated `Content-Type` values.
@Suite struct MediaTypeDifferentialTests {
    static let cases = 10_000
    static let types: [StaticString] = ["application/x-www-form-urlencoded", "application/json", "application/proto", "text/markdown"]

    /// The type before the first `;`, spaces and tabs trimmed, ASCII letters lower-cased (RFC 9110
    /// §8.3.1: type and subtype are case-insensitive; only the ASCII letters of a token have a case).
    static func reference(_ header: String?, _ expected: String) -> Bool {
        guard let header else { return false }
        let type = header.utf8.split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        let blanks: Set<UInt8> = [UInt8(ascii: " "), UInt8(ascii: "\t")]
        let trimmed = type.drop { blanks.contains($0) }.reversed().drop { blanks.contains($0) }.reversed()
        let lowered = trimmed.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 | 0x20 : $0 }
        return lowered == Array(expected.utf8)
    }

    /// One of the expected types (letters in random case), blanks around it, maybe parameters,
    /// maybe one character edited; or nil, or a short random string.
    static func header(_ generator: inout Generator, around expected: String) -> String? {
        if generator.chance(2) { return nil }
        if generator.chance(10) { return generator.string(maxLength: 8) }
        var scalars: [Unicode.Scalar] = expected.unicodeScalars.map { scalar in
            ("a"..."z").contains(scalar) && generator.chance(30) ? Unicode.Scalar(UInt8(scalar.value) - 0x20) : scalar
        }
        if generator.chance(30) {
            let index = generator.below(scalars.count + 1)
            switch generator.below(3) {
            case 0: scalars.insert(generator.scalar(), at: index)
            case 1 where index < scalars.count: scalars.remove(at: index)
            default: if index < scalars.count { scalars[index] = generator.scalar() }
            }
        }
        let blanks = [" ", "\t", "", "", "", "\u{A0}", "\n"]
        var header = generator.pick(blanks) + String(String.UnicodeScalarView(scalars)) + generator.pick(blanks)
        if generator.chance(30) { header += generator.pick([";", "; charset=utf-8", ";q=1;x=\"a;b\"", " ;"]) }
        return header
    }

    @Test func agreesWithASplitTrimLowercaseReference() {
        var generator = Generator(seed: 9110)
        var matched = 0
        var unmatched = 0
        var disagreements: [String] = []
        for _ in 0..<Self.cases {
            let expected = Self.types[generator.below(Self.types.count)]
            let header = Self.header(&generator, around: "\(expected)")
            let answer = MediaType.is(header, expected)
            if answer { matched += 1 } else { unmatched += 1 }
            if answer != Self.reference(header, "\(expected)") && disagreements.count < 10 {
                disagreements.append("\(String(describing: header).debugDescription) against \(expected): \(answer)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
        #expect(matched > Self.cases / 5 && unmatched > Self.cases / 5, "matched \(matched), unmatched \(unmatched)")
    }
}

@Suite struct AcceptEncodingTests {
    @Test func admitsGzipUnlessRefusedWithQZero() {
        for header in ["gzip", "x-gzip", "deflate, gzip;q=0.5", " GZIP ", "br;q=1, gzip", "gzip;q=0.001", "gzip;q=1"] {
            #expect(AcceptEncoding.admitsGzip(header), "\(header)")
        }
        for header in [nil, "", "br", "identity", "gzip;q=0", "gzip; Q=0.000", "gzip;q = 0", "gzip;q=0, gzip", "gzipx", "*"] {
            #expect(!AcceptEncoding.admitsGzip(header), "\(String(describing: header))")
        }
    }
}
