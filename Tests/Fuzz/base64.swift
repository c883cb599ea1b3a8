// Fuzz target: base64 both ways. The decoder is TokendWire's strict RFC 4648 §4 `Base64.decode`
// (the credentials of every `Authorization: Basic`, gRPC `authorization` metadata and
// `X-Tokend-Authorization`); the encoder is TokendCore's `Base64URL` (RFC 4648 §5, unpadded: every
// token, secret, jti and JWS tokend writes; tokend never decodes base64url, it only checks a token's
// alphabet). Properties:
// - what the decoder accepts, Foundation's `Data(base64Encoded:)` decodes to the same bytes;
// - on valid input (what Foundation's encoder writes, up to the unused low bits of the last
//   character, which neither decoder checks) it accepts, and Foundation's re-encoding of the bytes
//   decodes to them again;
// - `Base64URL.encode(x)` is Foundation's encoding with `+/` mapped to `-_` and the padding dropped,
//   and mapped back and padded it decodes to x.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBase64(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)

    // Decoding: the input as base64 text.
    let decoded = decode(raw)
    let foundation = Data(base64Encoded: Data(raw)).map(Array.init)
    if let decoded {
        require(foundation == decoded, "decoding \(Array(raw)): tokend \(decoded), Foundation \(foundation.map { "\($0)" } ?? "refuses")")
    }
    if let foundation {
        // Valid input: what Foundation's encoder writes, up to the unused low bits of the last
        // character. Foundation also takes other text, which the strict decoder refuses: any length
        // (the first finding, in this property: "bXklM0Fjjcg=="), and by hand "AA=A" and "====".
        let again = Array(Data(foundation).base64EncodedString().utf8)
        let padding = raw.reversed().prefix(while: { $0 == UInt8(ascii: "=") }).count
        let last = raw.count - padding - 1
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let valid =
            again.count == raw.count && raw.indices.allSatisfy { $0 == last ? alphabet.contains(raw[$0]) : again[$0] == raw[$0] }
        require(!valid || decoded == foundation, "valid base64 \(Array(raw)) refused")
        if valid { require(decode(again) == foundation, "the re-encoding of \(Array(raw)) decodes differently") }
    }

    // Encoding: the input as bytes.
    let url = Base64URL.encode(Array(raw))
    let reference = Data(raw).base64EncodedString().replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    require(url == reference, "Base64URL.encode(\(Array(raw))) is \(url), Foundation says \(reference)")
    require(url.utf8.allSatisfy(Base64URL.isAlphabet), "Base64URL.encode wrote outside its alphabet")
    var standard = Array(url.utf8).map { $0 == UInt8(ascii: "-") ? UInt8(ascii: "+") : $0 == UInt8(ascii: "_") ? UInt8(ascii: "/") : $0 }
    while standard.count % 4 != 0 { standard.append(UInt8(ascii: "=")) }
    require(decode(standard) == Array(raw), "Base64URL.encode(\(Array(raw))) does not decode back")
    return 0
}

/// `Base64.decode` into a buffer as large as the input (always enough).
private func decode(_ input: some Collection<UInt8>) -> [UInt8]? {
    var output = [UInt8](repeating: 0, count: input.count)
    let count = Array(input).withUnsafeBytes { raw in output.withUnsafeMutableBytes { Base64.decode(raw, into: $0) } }
    return count.map { Array(output.prefix($0)) }
}
