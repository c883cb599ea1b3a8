// Hand-written (scripts/generate-proto writes only Generated/): the one piece of ext_authz's
// request handling that needs nothing but the messages, here so that the fuzzer can build it with
// them (`Tests/Fuzz/check_request`).

extension Envoy_Service_Auth_V3_AttributeContext.HttpRequest {
    /// The request's headers by lower-case name: Envoy sends `headers` (a map, lower-case names),
    /// or `header_map` (raw values) when configured to; the first value of a name wins. A map key
    /// in another case counts only when the lower-case one is absent, and of several such spellings
    /// the first in `String` order: the map has no order of its own (a Swift dictionary iterates in
    /// an order seeded per instance), and the answer must not depend on it.
    public var headersByLowercasedName: [String: String] {
        var byName: [String: String] = [:]
        var otherSpellings: [String] = []
        for (name, value) in headers {
            if name == name.lowercased() { byName[name] = value } else { otherSpellings.append(name) }
        }
        for name in otherSpellings.sorted() where byName[name.lowercased()] == nil {
            byName[name.lowercased()] = headers[name]
        }
        for header in headerMap.headers {
            let name = header.key.lowercased()
            guard byName[name] == nil else { continue }
            byName[name] = header.value.isEmpty ? String(decoding: header.rawValue, as: UTF8.self) : header.value
        }
        return byName
    }
}
