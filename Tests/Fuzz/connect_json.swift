// Fuzz target: the Connect `json` codec's requests, swift-protobuf's JSON decoding of the 16
// request messages tokend accepts over Connect (the first byte picks the message, see
// SupportProto.swift) with the options of TokendAPI's `ConnectCodec` (`ConnectJSONOptions.decoding`:
// unknown members ignored). Properties:
// - a body that decodes is written as JSON (the codec's answer options, proto field names, and
//   protojson's default camelCase), and that JSON decodes to an equal message; written again (map
//   members sorted) it is the same JSON: stable;
// - decoding is monotonic in the option: a body the strict decoder (unknown members refused)
//   accepts, the codec's decoder accepts alike;
// - the message encoded in binary decodes (as the `proto` codec does) to an equal message, and
//   that decoded message's JSON is the same: the two codecs agree.
import Foundation
import SwiftProtobuf
import TokendProto

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnectJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let (type, body) = connectRequest(data, size) else { return 0 }
    check(type, body)
    return 0
}

private func check<M: Message & Equatable>(_ type: M.Type, _ body: [UInt8]) {
    let strict = try? M(jsonUTF8Bytes: body)
    let message: M
    do {
        message = try M(jsonUTF8Bytes: body, options: ConnectJSONOptions.decoding)
    } catch {
        require(strict == nil, "\(M.protoMessageName): the strict decoder accepts \(text(body)), the codec's refuses: \(error)")
        return
    }
    if let strict { require(strict == message, "\(M.protoMessageName): the strict decoder reads \(text(body)) differently") }

    // JSON round trip, in both spellings of the field names; stable once sorted.
    for options in [ConnectJSONOptions.encoding, JSONEncodingOptions()] {
        let json: [UInt8]
        let sorted: [UInt8]
        do {
            json = try message.jsonUTF8Bytes(options: options)
            sorted = try message.jsonUTF8Bytes(options: deterministic(options))
        } catch {
            fatalError("property violated: \(M.protoMessageName) decoded from \(text(body)) is not written as JSON: \(error)")
        }
        let again = try? M(jsonUTF8Bytes: json, options: ConnectJSONOptions.decoding)
        require(again == message, "\(M.protoMessageName): \(text(body)) written as \(text(json)) decodes to \(String(describing: again))")
        let fromSorted = try? M(jsonUTF8Bytes: sorted, options: ConnectJSONOptions.decoding)
        require(fromSorted == message, "\(M.protoMessageName): the sorted JSON \(text(sorted)) decodes differently")
        let rewritten: [UInt8]? = try? fromSorted?.jsonUTF8Bytes(options: deterministic(options))
        require(rewritten == sorted, "\(M.protoMessageName): \(text(sorted)) is written again as \(text(rewritten ?? []))")
    }

    // proto and JSON agree.
    let binary: [UInt8]
    do {
        binary = try message.serializedBytes(options: deterministicBinary)
    } catch {
        fatalError("property violated: \(M.protoMessageName) decoded from \(text(body)) does not encode: \(error)")
    }
    let fromProto = try? M(serializedBytes: binary.span.bytes)
    require(fromProto == message, "\(M.protoMessageName): \(text(body)) in binary \(show(binary)) decodes to \(String(describing: fromProto))")
    let json: [UInt8]? = try? fromProto?.jsonUTF8Bytes(options: deterministic(ConnectJSONOptions.encoding))
    let expected: [UInt8]? = try? message.jsonUTF8Bytes(options: deterministic(ConnectJSONOptions.encoding))
    require(json == expected, "\(M.protoMessageName): \(text(body)) through binary is written as \(text(json ?? []))")
}

private func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix(256), as: UTF8.self).debugDescription + (bytes.count > 256 ? "… (\(bytes.count) bytes)" : "")
}
