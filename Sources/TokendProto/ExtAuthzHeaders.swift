// Hand-written (scripts/generate-proto writes only Generated/): the one piece of ext_authz's
// request handling that needs nothing but the messages, here so that the fuzzer can build it with
// them (`Tests/Fuzz/check_request`).

extension Envoy_Service_Auth_V3_AttributeContext.HttpRequest {
    /// The request's headers by lower-case name: Envoy sends `headers` (a map), or `header_map`
    /// (raw values) when configured to; the first value of a name wins.
    public var headersByLowercasedName: [String: String] {
        var byName: [String: String] = [:]
        for (name, value) in headers { byName[name.lowercased()] = value }
        for header in headerMap.headers {
            let name = header.key.lowercased()
            guard byName[name] == nil else { continue }
            byName[name] = header.value.isEmpty ? String(decoding: header.rawValue, as: UTF8.self) : header.value
        }
        return byName
    }
}
