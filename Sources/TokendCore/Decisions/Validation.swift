/// Field checks shared by issuance and client registration.
public enum Validation {
    public static let maximumFieldLength = 1024

    public static func audiences(_ audiences: [String]) throws {
        guard audiences.count <= 32 else { throw TokendError.invalidRequest("at most 32 audiences") }
        for audience in audiences {
            let printable = !audience.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F || $0.properties.isWhitespace }
            guard !audience.isEmpty, audience.utf8.count <= 512, printable else {
                throw TokendError.invalidRequest("an audience must be 1-512 characters without spaces or control characters")
            }
        }
    }

    /// RFC 6749 §3.3: space-separated scope tokens of %x21 / %x23-5B / %x5D-7E.
    public static func scope(_ scope: String) throws {
        guard scope.utf8.count <= maximumFieldLength else { throw TokendError.invalidRequest("scope is too long") }
        for token in scope.split(separator: " ", omittingEmptySubsequences: false) {
            let ok =
                !token.isEmpty
                && token.utf8.allSatisfy { c in
                    c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
                }
            guard ok else { throw TokendError.invalidRequest("scope must be space-separated RFC 6749 scope tokens") }
        }
    }

    public static func text(_ value: String, field: String) throws {
        guard value.utf8.count <= maximumFieldLength else { throw TokendError.invalidRequest("\(field) is too long") }
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw TokendError.invalidRequest("\(field) contains control characters")
        }
    }
}
