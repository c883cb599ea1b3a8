import Foundation

/// The `Accept-Encoding` request header (RFC 9110 §12.5.3), as far as a server that offers only gzip reads it.
public enum AcceptEncoding {
    /// Whether the list admits gzip: its first `gzip` or `x-gzip` entry, unless that entry has `q=0`.
    public static func admitsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let coding = parts.first, coding == "gzip" || coding == "x-gzip" else { continue }
            let refused = parts.dropFirst().contains {
                $0.replacingOccurrences(of: " ", with: "").hasPrefix("q=0") && !$0.contains(where: { "123456789".contains($0) })
            }
            return !refused
        }
        return false
    }
}
