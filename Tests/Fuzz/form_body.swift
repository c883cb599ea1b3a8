// Fuzz target: FormBody, the parser of every form body and of /authz's query.
// Properties: the restricted parse agrees with the full one; a successful parse round-trips
// through form encoding; Foundation's percent-decoding gives the same names and values.
// (First finding, in the property itself: bytes such as `%C3` followed by a raw 0xA9 decode to
// "é", as WHATWG's form parser has it; Foundation is only asked about input that is UTF-8 as sent.
// The next two were the reference's too: "&" or "+" followed by a combining mark is one Swift
// Character, so the reference splits and replaces bytes.)
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFormBody(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    let only = try? FormBody(bytes: raw, only: ["audience", "scope"])
    guard let full = try? FormBody(bytes: raw) else { return 0 }
    require(only != nil, "the restricted parse failed where the full parse succeeded")
    for name in ["audience", "scope"] { require(only?[name] == full[name], "restricted and full parse disagree on \(name)") }

    let encoded = full.fields.map { PercentEncoding.encode($0.key) + "=" + PercentEncoding.encode($0.value) }.joined(separator: "&")
    var again: FormBody?
    encoded.utf8.withContiguousStorageIfAvailable { again = try? FormBody(bytes: UnsafeRawBufferPointer($0)) }
    require(again?.fields == full.fields, "the re-encoded body does not parse to the same fields")

    // Foundation, on the same input when it is valid UTF-8 as sent (raw non-ASCII bytes between
    // escapes are accepted, as WHATWG's parser accepts them, but Foundation needs a String):
    // split at & and the first =, + is a space, %XX a byte.
    guard String(validating: raw, as: UTF8.self) != nil else { return 0 }
    // Split bytes, not Characters: "&" followed by a combining mark is one Character.
    for segment in raw.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
        let parts = segment.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
        func foundation(_ bytes: Slice<UnsafeRawBufferPointer>) -> String? {
            // "+" to a space on bytes too ("+" and a combining mark are one Character).
            String(decoding: bytes.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: " ") : $0 }, as: UTF8.self).removingPercentEncoding
        }
        let name = foundation(parts[0])
        let value = parts.count > 1 ? foundation(parts[1]) : ""
        require(name != nil && full[name!] == value, "Foundation decodes \(Array(segment)) differently")
    }
    return 0
}
