/// A `host:port` listener address.
public struct ListenAddress: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, `[v6]:port` or `:port` (all interfaces); `name` is the setting, for the error.
    public init(parsing text: String, name: String) throws(ConfigurationError) {
        var hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ConfigurationError("\(name) must look like host:port") }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ConfigurationError("\(name) must look like host:port") }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        if hostPart.isEmpty { hostPart = "0.0.0.0" }
        guard let port = Int(portPart), (0...65535).contains(port) else {
            throw ConfigurationError("\(name) has an invalid port \"\(portPart.prefix(16))\"")
        }
        self.host = String(hostPart)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Parses durations such as `5s`, `250ms`, `2m`, `1h`, or a bare number of seconds.
public func parseDuration(_ text: String) -> Double? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        if let value = Double(text.dropLast(suffix.count)), value >= 0 { return value * factor }
    }
    if let value = Double(text), value >= 0 { return value }
    return nil
}

/// Parses sizes such as `256MiB`, `1GiB`, `512KiB` (powers of 1024), `64MB`, `1GB`, `512KB`
/// (powers of 1000), `100B` or a bare number of bytes: a whole number and at most one unit.
public func parseByteSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
    ]
    var digits = Substring(text)
    var factor = 1
    if let (suffix, unit) = units.first(where: { text.hasSuffix($0.0) }) {
        digits = digits.dropLast(suffix.count)
        factor = unit
    }
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits) else { return nil }
    let (bytes, overflow) = value.multipliedReportingOverflow(by: factor)
    return overflow ? nil : bytes
}
