import Foundation
import Testing

@testable import TokendWire

@Suite struct JSONWriterTests {
    static func string(_ writer: JSONWriter) -> String { String(decoding: writer.bytes, as: UTF8.self) }

    @Test func escapesControlCharactersQuotesAndBackslashes() {
        var writer = JSONWriter()
        writer.beginObject()
        writer.member("k", string: "a\"b\\c\u{1}\n\t\u{8}\u{C}\r/é\u{1F}\u{7F}")
        writer.member("q\"\u{0}", string: "")
        writer.endObject()
        #expect(Self.string(writer) == #"{"k":"a\"b\\c\u0001\n\t\b\f\r/é\u001f\#u{7F}","q\"\u0000":""}"#)
    }

    @Test func writesIntegersBooleansAndArrays() {
        var writer = JSONWriter(capacity: 4)
        writer.beginObject()
        writer.field("n", int: -42)
        writer.field("min", int: .min)
        writer.field("max", int: .max)
        writer.field("zero", int: 0)
        writer.field("t", bool: true)
        writer.field("f", bool: false)
        writer.field("e", strings: [])
        writer.field("l", strings: ["a", "\""])
        writer.fieldKey("o")
        writer.beginObject()
        writer.field("x", string: "y")
        writer.endObject()
        writer.endObject()
        #expect(
            Self.string(writer) == #"{"n":-42,"min":-9223372036854775808,"max":9223372036854775807,"zero":0,"#
                + #""t":true,"f":false,"e":[],"l":["a","\""],"o":{"x":"y"}}"#
        )
    }
}

/// JSONWriter against a reference escaper (its bytes) and JSONDecoder and JSONSerialization
/// (reading its output back), over generated strings.
@Suite struct JSONWriterDifferentialTests {
    static let objects = 1_000
    static let stringsPerObject = 10

    /// RFC 8259 §7 as JSONWriter documents it: `"` `\` and control characters escaped, the short
    /// forms where there is one, `\u00xx` in lower-case hex otherwise; everything else as UTF-8.
    static func reference(_ string: String) -> String {
        var json = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": json += "\\\""
            case "\\": json += "\\\\"
            case "\u{8}": json += "\\b"
            case "\u{C}": json += "\\f"
            case "\n": json += "\\n"
            case "\r": json += "\\r"
            case "\t": json += "\\t"
            case "\u{0}"..."\u{1F}": json += String(format: "\\u%04x", scalar.value)
            default: json.unicodeScalars.append(scalar)
            }
        }
        return json + "\""
    }

    /// A member as JSONDecoder reads it back, strings as UTF-8.
    enum Member: Decodable, Equatable {
        case string([UInt8])
        case strings([[UInt8]])
        case number(Int64)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let string = try? container.decode(String.self) {
                self = .string(Array(string.utf8))
            } else if let strings = try? container.decode([String].self) {
                self = .strings(strings.map { Array($0.utf8) })
            } else {
                self = .number(try container.decode(Int64.self))
            }
        }
    }

    @Test func jsonSerializationDropsAByteOrderMarkAfterAnEscape() throws {
        // Why JSONSerialization is not asked about strings with U+FEFF above; JSONDecoder keeps it.
        var writer = JSONWriter()
        writer.beginObject()
        writer.member("k", string: "\n\u{FEFF}x")
        writer.endObject()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String: String])
        #expect(object["k"] == "\nx")
        #expect(try JSONDecoder().decode([String: String].self, from: Data(writer.bytes))["k"] == "\n\u{FEFF}x")
    }

    @Test func readsBackAsTheStringsWrittenAndEscapesAsTheReference() throws {
        var generator = Generator(seed: 8259)
        var disagreements: [String] = []
        for _ in 0..<Self.objects {
            let keys = (0..<Self.stringsPerObject).map { "\($0)" + generator.string(maxLength: 6) }
            let values = (0..<Self.stringsPerObject).map { _ in generator.string(maxLength: 24) }
            let number = generator.pick([Int64.min, .max, 0, -1]) &+ Int64(bitPattern: generator.next() >> generator.below(64))
            var writer = JSONWriter()
            writer.beginObject()
            for (key, value) in zip(keys, values) { writer.member(key, string: value) }
            writer.field("list", strings: values)
            writer.field("number", int: number)
            writer.endObject()

            var expected = "{"
            for (key, value) in zip(keys, values) { expected += Self.reference(key) + ":" + Self.reference(value) + "," }
            expected += #""list":["# + values.map(Self.reference).joined(separator: ",") + #"],"number":\#(number)}"#
            if writer.bytes != Array(expected.utf8) && disagreements.count < 10 {
                disagreements.append("bytes: \(String(decoding: writer.bytes, as: UTF8.self).debugDescription)")
            }

            let object = try #require(try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String: Any])
            let decoded = try JSONDecoder().decode([String: Member].self, from: Data(writer.bytes))
            for (key, value) in zip(keys, values) {
                // Compared as UTF-8: String's `==` would take canonically equivalent strings as equal.
                if decoded[key] != .string(Array(value.utf8)) && disagreements.count < 10 {
                    disagreements.append("member \(key.debugDescription): \(String(describing: decoded[key])) for \(value.debugDescription)")
                }
                // JSONSerialization drops a U+FEFF at the start of a string and after an escape.
                if !(key + value).unicodeScalars.contains("\u{FEFF}"),
                    (object[key] as? String).map({ Array($0.utf8) }) != Array(value.utf8) && disagreements.count < 10
                {
                    disagreements.append(
                        "JSONSerialization member \(key.debugDescription): \(String(describing: object[key])) for \(value.debugDescription)"
                    )
                }
            }
            if decoded["list"] != .strings(values.map { Array($0.utf8) }) && disagreements.count < 10 {
                disagreements.append("list: \(String(describing: decoded["list"])) for \(values)")
            }
            // Numbers through JSONDecoder only: JSONSerialization gives some as NSDecimalNumber.
            if decoded["number"] != .number(number) && disagreements.count < 10 {
                disagreements.append("number: \(String(describing: decoded["number"])) for \(number)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }
}
