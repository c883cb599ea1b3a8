import Foundation
import SwiftProtobuf
import Testing
import TokendProto

/// `HttpRequest.headersByLowercasedName`: ext_authz's reading of the request's headers
/// (TokendProto, so that `Tests/Fuzz/check_request` builds it).
@Suite struct ExtAuthzHeadersTests {
    private func http(_ headers: [String: String], _ headerMap: [(String, String, String)] = []) -> Envoy_Service_Auth_V3_AttributeContext.HttpRequest
    {
        .with {
            $0.headers = headers
            $0.headerMap.headers = headerMap.map { key, value, raw in
                .with {
                    $0.key = key
                    $0.value = value
                    $0.rawValue = Data(raw.utf8)
                }
            }
        }
    }

    @Test func namesAreLowerCaseAndTheMapComesBeforeHeaderMap() {
        let headers = http(["Accept": "*/*", "authorization": "Bearer a"], [("Authorization", "Bearer b", ""), ("X-Id", "", "raw")])
            .headersByLowercasedName
        #expect(headers == ["accept": "*/*", "authorization": "Bearer a", "x-id": "raw"])
        #expect(http([:], [("X-Id", "1", ""), ("x-id", "2", "")]).headersByLowercasedName == ["x-id": "1"])
    }

    /// Found by check_request's property (the same request read twice gives the same headers): with
    /// one name in several spellings in the map, the value depended on the dictionary's order,
    /// seeded per instance. The fuzzer's own input: two `attributes` fields, whose maps merge, with
    /// `:authority` and `:autHority`.
    @Test func oneNameInSeveralSpellingsInTheMapIsReadTheSameEveryTime() throws {
        let spellings = ["Authorization": "Bearer first", "AUTHORIZATION": "Bearer second", "authorization": "Bearer third"]
        let bytes: [UInt8] = try http(spellings).serializedBytes()
        for _ in 0..<50 {
            let decoded = try Envoy_Service_Auth_V3_AttributeContext.HttpRequest(serializedBytes: bytes)
            #expect(decoded.headersByLowercasedName == ["authorization": "Bearer third"])
        }
        // Without the lower-case key, the first other spelling in String order.
        let upper: [UInt8] = try http(["Authorization": "Bearer first", "AUTHORIZATION": "Bearer second"]).serializedBytes()
        for _ in 0..<50 {
            let decoded = try Envoy_Service_Auth_V3_AttributeContext.HttpRequest(serializedBytes: upper)
            #expect(decoded.headersByLowercasedName == ["authorization": "Bearer second"])
        }
    }
}
