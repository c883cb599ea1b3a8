/// RFC 9110 §12.5.1 `Accept`: the weight a header gives a media type.
public enum AcceptHeader {
    /// The q-value `header` gives `mediaType` (`type/subtype`, lower case): that of the most
    /// specific media range that matches it (`type/subtype` over `type/*` over `*/*`), 0 when none
    /// does, and 1 when there is no header (RFC 9110: "any media type is acceptable"). Elements
    /// whose `q` is not a valid qvalue are skipped; parameters other than `q` are not compared.
    public static func quality(of mediaType: String, in header: String?) -> Double {
        guard let header, header.contains(where: { $0 != " " && $0 != "\t" && $0 != "," }) else { return 1 }
        let wanted = mediaType.split(separator: "/", maxSplits: 1)
        guard wanted.count == 2 else { return 0 }
        var best: (specificity: Int, q: Double) = (0, 0)
        for element in header.split(separator: ",") {
            let parts = element.split(separator: ";")
            guard let range = parts.first?.trimmingBlanks.lowercased() else { continue }
            let types = range.split(separator: "/", maxSplits: 1)
            guard types.count == 2 else { continue }
            let specificity: Int
            if types[0] == wanted[0] && types[1] == wanted[1] {
                specificity = 3
            } else if types[0] == wanted[0] && types[1] == "*" {
                specificity = 2
            } else if types[0] == "*" && types[1] == "*" {
                specificity = 1
            } else {
                continue
            }
            var q = 1.0
            var valid = true
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1)
                guard pair.count == 2, pair[0].trimmingBlanks.lowercased() == "q" else { continue }
                if let value = qvalue(pair[1].trimmingBlanks) { q = value } else { valid = false }
            }
            if valid && specificity > best.specificity { best = (specificity, q) }
        }
        return best.q
    }

    /// RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`.
    static func qvalue(_ text: Substring) -> Double? {
        guard let first = text.first, first == "0" || first == "1", text.count <= 5 else { return nil }
        let rest = text.dropFirst()
        if rest.isEmpty { return first == "1" ? 1 : 0 }
        guard rest.first == ".", rest.dropFirst().allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        if first == "1" { return rest.dropFirst().allSatisfy { $0 == "0" } ? 1 : nil }
        return Double(String(text))
    }
}

extension Substring {
    fileprivate var trimmingBlanks: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
