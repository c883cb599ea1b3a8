// Fuzz target: the Connect `proto` codec's requests, swift-protobuf's binary decoding of the 16
// request messages tokend accepts over Connect (the first byte picks the message, see
// SupportProto.swift), decoded as TokendAPI's `ConnectCodec` does (`init(serializedBytes:)` over a
// RawSpan, default options: unknown fields kept, depth limit 100). Properties:
// - a body that decodes re-encodes to bytes that decode to an equal message (unknown fields
//   included), and that re-encoding is stable: encode(decode(encode(m))) == encode(m) (map entries
//   sorted, see `deterministicBinary`);
// - the same body decoded without its unknown fields is written as Connect JSON (both the codec's
//   answer options, proto field names, and protojson's default camelCase) without an error, and
//   that JSON decodes (with the codec's request options) to an equal message: the two codecs agree.
import Foundation
import SwiftProtobuf
import TokendProto

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnectProto(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let (type, body) = connectRequest(data, size) else { return 0 }
    check(type, body)
    return 0
}

private func check<M: Message & Equatable>(_ type: M.Type, _ body: [UInt8]) {
    let message: M
    do {
        message = try M(serializedBytes: body.span.bytes)
    } catch {
        // Whatever ConnectCodec refuses is invalid_argument; the other decoder path must agree.
        require((try? M(serializedBytes: body)) == nil, "\(M.protoMessageName): only the RawSpan decoding refuses \(show(body))")
        return
    }
    require((try? M(serializedBytes: body)) == message, "\(M.protoMessageName): the [UInt8] decoding of \(show(body)) differs")

    // Round trip, and a stable re-encoding.
    let encoded: [UInt8]
    let stable: [UInt8]
    do {
        encoded = try message.serializedBytes()
        stable = try message.serializedBytes(options: deterministicBinary)
    } catch {
        fatalError("property violated: \(M.protoMessageName) decoded from \(show(body)) does not encode: \(error)")
    }
    let again = try? M(serializedBytes: encoded)
    require(again == message, "\(M.protoMessageName): \(show(body)) re-encoded as \(show(encoded)) decodes to \(String(describing: again))")
    let fromStable = try? M(serializedBytes: stable)
    require(fromStable == message, "\(M.protoMessageName): the sorted encoding \(show(stable)) decodes differently")
    let reencoded: [UInt8]? = try? fromStable?.serializedBytes(options: deterministicBinary)
    require(reencoded == stable, "\(M.protoMessageName): encode(decode(\(show(stable)))) is \(show(reencoded ?? []))")

    // proto and JSON agree (JSON has no unknown fields: compare the message without them).
    let known: M
    do {
        known = try M(serializedBytes: body, options: discardingUnknownFields)
    } catch {
        fatalError("property violated: \(M.protoMessageName): \(show(body)) decodes, but not when dropping unknown fields: \(error)")
    }
    for options in [ConnectJSONOptions.encoding, JSONEncodingOptions()] {
        let json: [UInt8]
        do {
            json = try known.jsonUTF8Bytes(options: options)
        } catch {
            fatalError("property violated: \(M.protoMessageName) from \(show(body)) is not written as JSON: \(error)")
        }
        let fromJSON = try? M(jsonUTF8Bytes: json, options: ConnectJSONOptions.decoding)
        require(
            fromJSON == known,
            "\(M.protoMessageName): \(show(body)) as JSON \(String(decoding: json.prefix(256), as: UTF8.self)) decodes to \(String(describing: fromJSON))"
        )
    }
}
