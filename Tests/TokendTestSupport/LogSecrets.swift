/// Finds what looks like a raw token or a client secret in captured log text: a run of base64url
/// characters that is a tokend token (`tkd_at_` / `tkd_rt_` and 43 more) or exactly 43 characters
/// long (a 256-bit secret, as client secrets and the token bodies are). Nothing tokend logs on
/// purpose has that shape: token hashes are short hex, ids 22 characters. Findings are redacted
/// to their first six characters, so that a failing test does not print the secret either.
public func secretsInLog(_ text: String) -> [String] {
    var findings: [String] = []
    var run: [UInt8] = []
    func flush() {
        defer { run.removeAll(keepingCapacity: true) }
        let word = String(decoding: run, as: UTF8.self)
        let isToken = (word.contains("tkd_at_") || word.contains("tkd_rt_")) && run.count >= 50
        if isToken || run.count == 43 { findings.append(String(word.prefix(6)) + "…(\(run.count) characters)") }
    }
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"):
            run.append(byte)
        default:
            if !run.isEmpty { flush() }
        }
    }
    if !run.isEmpty { flush() }
    return findings
}
