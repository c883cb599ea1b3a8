// Fuzz target: the `Authorization: Basic` parser and its base64 decoder.
// Properties: whatever the strict base64 decoder accepts, Foundation decodes to the same bytes;
// a successful parse round-trips through RFC 6749 §2.3.1 encoding.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBasicCredentials(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)

    if size <= 2048 {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1536, alignment: 1)
        defer { scratch.deallocate() }
        if let count = Base64.decode(raw, into: scratch) {
            let foundation = Data(base64Encoded: Data(raw))
            require(foundation == Data(scratch[..<count]), "base64: Foundation decodes \(Array(raw)) differently")
        }
    }

    guard let (id, secret) = try? BasicCredentials.parse(raw) else { return 0 }
    require(!id.isEmpty, "an empty client id was accepted")
    let header = "Basic " + Data((PercentEncoding.encode(id) + ":" + PercentEncoding.encode(secret)).utf8).base64EncodedString()
    // Re-encoding escapes every reserved byte (three bytes each): past the parser's 2,048 bytes of
    // credentials the longer form is refused, rightly. (The first CI run found this in the property.)
    guard header.utf8.count - "Basic ".utf8.count <= 2048 else { return 0 }
    var again: (clientID: String, secret: String)?
    header.utf8.withContiguousStorageIfAvailable { again = try? BasicCredentials.parse(UnsafeRawBufferPointer($0)) }
    require(again?.clientID == id && again?.secret == secret, "re-encoded credentials do not parse to the same pair")
    return 0
}
