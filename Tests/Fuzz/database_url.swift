// Fuzz target: PostgresURL, the parts of TOKEND_DATABASE_URL / TOKEND_READ_DATABASE_URL, and the
// redaction of those URLs for log lines. Properties:
// - what the URL says is what is parsed: a user, password or port in it is that user, password
//   or port, percent-decoded once (never replaced by a default, never dropped);
// - the port is a TCP port, 1-65535 (Foundation takes any digits, and NIO truncates: `:99999` went
//   to port 34463);
// - an accepted URL re-rendered (`url`) parses to the same parts;
// - neither the description nor the redaction of the input carries the password: the description
//   does not change with the password, and the redacted URL has none but `xxxxx`.
// Findings in the parser (each fixed, with a test in PostgresURLTests). Found by this target: a
// password that is not valid percent-encoding (`p%` then a non-hex byte) was dropped and the
// connection made without one; the redaction for log lines kept a password that does not decode to
// UTF-8 (`p%80ss`); a port past Int.max was replaced by the default 5432. Found while fixing the
// first (the properties above cover them): such a user or database name became the default
// (`postgres`, the user); parts were percent-decoded twice (`%2541` became `A`); ports outside
// 1-65535 were taken. Found later by this target in CI: a host written in Unicode (`uƍ%432`) was
// taken in Foundation's punycode form, `xn--uC2-flb`, which parses back to another name; hosts
// are now ASCII as written.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDatabaseURL(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)

    let redacted = PostgresURL.redacted(text)
    if let components = URLComponents(string: redacted), let password = components.percentEncodedPassword {
        require(password == "xxxxx", "the redaction of \(text.debugDescription) keeps a password: \(redacted.debugDescription)")
    }

    guard let parsed = try? PostgresURL(text) else { return 0 }
    let components = URLComponents(string: text)
    if let user = components?.percentEncodedUser {
        require(parsed.user == user.removingPercentEncoding, "\(text.debugDescription): user \(parsed.user.debugDescription), the URL says \(user.debugDescription)")
    }
    if let password = components?.percentEncodedPassword {
        require(parsed.password == password.removingPercentEncoding, "\(text.debugDescription): the URL's password is not the one parsed")
    }
    // (The range is in Foundation's string, which percent-encodes what the input left raw: the first
    // finding, in this property, took it in the input.)
    if let components, let string = components.string, let range = components.rangeOfPort, !string[range].isEmpty {
        require(Int(string[range]) == parsed.port, "\(text.debugDescription): port \(parsed.port), the URL says \(string[range])")
    }
    require((1...65535).contains(parsed.port), "\(text.debugDescription): port \(parsed.port)")

    let again = try? PostgresURL(parsed.url)
    require(again == parsed, "\(text.debugDescription) re-rendered as \(parsed.url.debugDescription) parses to \(again.map { "\($0.url)" } ?? "an error")")

    var other = parsed
    other.password = parsed.password == nil ? nil : (parsed.password == "a" ? "b" : "a")
    require(parsed.description == other.description, "the description of \(text.debugDescription) depends on its password")
    return 0
}
