// Shared by the fuzz targets (compiled into each, with Sources/TokendWire, by scripts/fuzz).
import Foundation

/// RFC 6749 Appendix B / HTML form encoding of one component: every byte outside the unreserved
/// set as %XX (spaces too, so that decoding is unambiguous).
func formEncode(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(UnicodeScalar(byte))
        default:
            out += String(format: "%%%02X", byte)
        }
    }
    return out
}

/// Fails the run (libFuzzer reports the input as a crash) when a property does not hold.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("property violated: \(message())") }
}
