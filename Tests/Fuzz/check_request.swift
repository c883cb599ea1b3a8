// Fuzz target: Envoy ext_authz's `CheckRequest` (envoy.service.auth.v3.Authorization/Check on the
// gRPC listener): swift-protobuf's binary decoding with grpc-swift-protobuf's default options, then
// tokend's reading of it in TokendGRPC's `ExtAuthzServiceGRPC.check`: the headers by lower-case
// name (`HttpRequest.headersByLowercasedName`, TokendProto) and the end user's token in their
// `authorization` (`BearerAuthorization.token`, TokendWire). Properties:
// - a request that decodes re-encodes to bytes that decode to an equal request, and that
//   re-encoding is stable (map entries sorted);
// - every header name is lower case; the names are those of `headers` and `header_map`, lowered;
//   a name from `headers` has the value of its lower-case key there, else of its first other
//   spelling in String order; any other name the first `header_map` entry's (`value`, or
//   `raw_value` when `value` is empty);
// - the headers are a function of the request: the same bytes decoded again give the same headers
//   (the finding: with one name in two spellings in `headers`, such as `Authorization` and
//   `authorization`, the token depended on the order of a Swift dictionary, seeded per instance);
// - the token is what a reading of the header's bytes finds: after leading spaces, the scheme
//   `bearer` in any ASCII case ending at a space or the end, then the rest without its leading and
//   trailing spaces; so it is a piece of the header, never longer than it, without spaces at its
//   ends; no header or another scheme: no token (the finding: read by Character, a space followed
//   by a combining mark was no space, and `Bearer <U+0301>…` presented no token).
import Foundation
import SwiftProtobuf
import TokendProto

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    // GRPCProtobuf's ProtobufDeserializer: `Message(serializedBytes:)` with the default options.
    guard let request = try? Envoy_Service_Auth_V3_CheckRequest(serializedBytes: body) else { return 0 }

    let encoded: [UInt8]
    let stable: [UInt8]
    do {
        encoded = try request.serializedBytes()
        stable = try request.serializedBytes(options: deterministicBinary)
    } catch {
        fatalError("property violated: a CheckRequest decoded from \(show(body)) does not encode: \(error)")
    }
    require(
        (try? Envoy_Service_Auth_V3_CheckRequest(serializedBytes: encoded)) == request,
        "\(show(body)) re-encoded as \(show(encoded)) decodes differently"
    )
    let fromStable = try? Envoy_Service_Auth_V3_CheckRequest(serializedBytes: stable)
    require(fromStable == request, "the sorted encoding \(show(stable)) decodes differently")
    let reencoded: [UInt8]? = try? fromStable?.serializedBytes(options: deterministicBinary)
    require(reencoded == stable, "encode(decode(\(show(stable)))) differs")

    // The headers.
    let http = request.attributes.request.http
    let headers = http.headersByLowercasedName
    var names = Set(http.headers.keys.map { $0.lowercased() })
    names.formUnion(http.headerMap.headers.map { $0.key.lowercased() })
    require(Set(headers.keys) == names, "header names \(headers.keys.sorted()), expected \(names.sorted())")
    for (name, value) in headers {
        require(name == name.lowercased(), "a header name not in lower case: \(name.debugDescription)")
        let spellings = http.headers.keys.filter { $0.lowercased() == name }
        if spellings.isEmpty {
            let first = http.headerMap.headers.first { $0.key.lowercased() == name }
            let expected = first.map { $0.value.isEmpty ? String(decoding: $0.rawValue, as: UTF8.self) : $0.value }
            require(value == expected, "\(name): \(value.debugDescription), the first header_map entry says \(String(describing: expected))")
        } else {
            let chosen = spellings.first { $0 == $0.lowercased() } ?? spellings.sorted()[0]
            require(
                value == http.headers[chosen],
                "\(name): \(value.debugDescription), the map has \(http.headers.filter { spellings.contains($0.key) })"
            )
        }
    }
    let decodedAgain = try? Envoy_Service_Auth_V3_CheckRequest(serializedBytes: body)
    let headersAgain = decodedAgain?.attributes.request.http.headersByLowercasedName
    require(headersAgain == headers, "the same request gives other headers: \(headers) then \(String(describing: headersAgain))")

    // The token.
    let authorization = headers["authorization"]
    let token = BearerAuthorization.token(authorization)
    let expected = authorization.flatMap { bearerToken(Array($0.utf8)) }
    require(
        token == expected,
        "authorization \(String(describing: authorization?.debugDescription)): token \(String(describing: token?.debugDescription)), its bytes give \(String(describing: expected?.debugDescription))"
    )
    if let token, let authorization {
        require(token.utf8.count <= authorization.utf8.count, "a token longer than its header")
        require(token.first != " " && token.last != " ", "a token with a space at an end: \(token.debugDescription)")
    }
    return 0
}

/// RFC 6750 §2.1 read on bytes: spaces, `bearer` in any ASCII case, then a space or the end; the
/// token is the rest without its leading and trailing spaces (`nil`: another scheme).
private func bearerToken(_ header: [UInt8]) -> String? {
    let space = UInt8(ascii: " ")
    var start = 0
    while start < header.count && header[start] == space { start += 1 }
    var end = start
    while end < header.count && header[end] != space { end += 1 }
    let scheme = header[start..<end].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
    guard scheme == Array("bearer".utf8) else { return nil }
    var tokenStart = end
    var tokenEnd = header.count
    while tokenStart < tokenEnd && header[tokenStart] == space { tokenStart += 1 }
    while tokenEnd > tokenStart && header[tokenEnd - 1] == space { tokenEnd -= 1 }
    return String(decoding: header[tokenStart..<tokenEnd], as: UTF8.self)
}
