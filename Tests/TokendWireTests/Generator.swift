import Foundation

/// A seeded, deterministic source of inputs (SplitMix64), so that a failing case is found again on every run.
struct Generator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// True with probability `percent` in 100.
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }

    /// A Unicode scalar: mostly ASCII, often a control character or a character JSON and forms
    /// treat specially, sometimes two, three or four UTF-8 bytes long.
    mutating func scalar() -> Unicode.Scalar {
        switch below(10) {
        case 0: return Unicode.Scalar(UInt8(below(0x20)))
        case 1: return pick(["\"", "\\", "/", "%", "+", "&", "=", ":", ";", " ", "\u{7F}"])
        case 2: return pick(["é", "ü", "\u{A0}", "\u{301}", "\u{130}", "\u{212A}"])
        case 3: return pick(["日", "本", "\u{2028}", "\u{2029}", "\u{FEFF}", "\u{FFFD}"])
        case 4: return pick(["🎉", "𝄞", "\u{10FFFF}"])
        default: return Unicode.Scalar(UInt8(0x20 + below(0x5F)))
        }
    }

    mutating func string(maxLength: Int) -> String {
        var string = ""
        for _ in 0..<below(maxLength + 1) { string.unicodeScalars.append(scalar()) }
        return string
    }
}

/// A reference form-component decoder (`+` a space, `%XX` a byte, UTF-8 required), written
/// plainly on bytes: `String(decoding:)` repairs invalid UTF-8, so a string that does not give back
/// its bytes was not UTF-8.
func referenceFormComponent(_ component: some Collection<UInt8>) -> String? {
    let input = Array(component)
    var decoded: [UInt8] = []
    var i = 0
    while i < input.count {
        switch input[i] {
        case UInt8(ascii: "+"):
            decoded.append(UInt8(ascii: " "))
            i += 1
        case UInt8(ascii: "%"):
            guard i + 2 < input.count,
                input[(i + 1)...(i + 2)].allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
                let byte = UInt8(String(decoding: input[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
            else { return nil }
            decoded.append(byte)
            i += 3
        default:
            decoded.append(input[i])
            i += 1
        }
    }
    let string = String(decoding: decoded, as: UTF8.self)
    return Array(string.utf8) == decoded ? string : nil
}

/// Foundation's `removingPercentEncoding` on a form component, `+` read as a space. A raw non-ASCII
/// byte is first written as its own `%XX` escape (the same byte once decoded), so that the
/// component is ASCII and can be handed over as a String.
///
/// It is not strict: it repairs invalid UTF-8 with U+FFFD and drops a byte order mark at the start.
func foundationFormComponent(_ component: some Collection<UInt8>) -> String? {
    var escaped = ""
    for byte in component {
        if byte == UInt8(ascii: "+") {
            escaped += "%20"
        } else if byte >= 0x80 {
            escaped += String(format: "%%%02X", byte)
        } else {
            escaped.unicodeScalars.append(Unicode.Scalar(byte))
        }
    }
    return escaped.removingPercentEncoding
}

/// A form component as a generator writes it, biased toward the grammar: plain characters,
/// `+`, valid and broken `%XX` escapes, escaped and raw UTF-8, raw bytes that are not UTF-8.
extension Generator {
    mutating func formComponent(maxAtoms: Int = 6) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<below(maxAtoms + 1) {
            switch below(20) {
            case 0: bytes += Array("+".utf8)
            case 1: bytes += Array(String(format: "%%%02X", below(0x80)).utf8)  // an escaped ASCII byte
            case 2: bytes += Array(String(format: "%%%02x", below(0x100)).utf8)  // any escaped byte, lower-case hex
            case 3:  // an escaped UTF-8 scalar
                let scalar = String(scalar())
                bytes += scalar.utf8.flatMap { Array(String(format: "%%%02X", $0).utf8) }
            case 4: bytes += Array(pick(["%", "%4", "%zz", "%g0", "%0G", "%-1", "% 1"]).utf8)
            case 5: bytes += Array(pick(["é", "日本", "🎉"]).utf8)
            case 6: bytes.append(pick([0xFF, 0xC3, 0x80, 0xE6, 0xED]))
            case 7: bytes += Array(pick(["%C3", "%E6%97", "%ED%A0%80", "%F4%90%80%80", "%C0%AF"]).utf8)  // truncated, surrogate, too large, overlong
            case 8: bytes.append(UInt8(below(0x20)))
            default: bytes.append(pick(Array("abcxyzABCXYZ0189-._~*:/?".utf8)))
            }
        }
        return bytes
    }
}
