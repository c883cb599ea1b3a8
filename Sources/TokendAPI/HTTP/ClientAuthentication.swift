import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

/// Client credentials as presented (RFC 6749 §2.3.1): `client_secret_basic` or `client_secret_post`.
struct ClientCredentials: Sendable {
    var clientID: String
    var secret: String
}

enum ClientAuthentication {
    /// Extracts credentials from `Authorization: Basic` or, when `form` is given, from the
    /// `client_id`/`client_secret` form parameters. Using both methods at once is an
    /// `invalid_request` (RFC 6749 §2.3); none, or a malformed header, is `invalid_client`.
    static func credentials(headers: HTTPFields, form: FormBody?) throws -> ClientCredentials {
        let formSecret = form?["client_secret"]
        if let authorization = headers[.authorization] {
            if formSecret != nil {
                throw TokendError.invalidRequest("use exactly one client authentication method")
            }
            return try basic(authorization)
        }
        if let form, let id = form["client_id"], let secret = formSecret {
            return ClientCredentials(clientID: id, secret: secret)
        }
        throw TokendError(.unauthenticated, "client authentication required")
    }

    /// RFC 7617 Basic with RFC 6749 §2.3.1's form-encoding of id and secret. Parsed on the
    /// header's UTF-8 bytes: scheme (case-insensitive) and credentials separated by a space,
    /// blanks around the credentials ignored, strict base64 (RFC 4648 §4, padded), `id:secret`
    /// split at the first colon, each part form-decoded.
    static func basic(_ header: String) throws -> ClientCredentials {
        var header = header
        return try header.withUTF8 { try basic(utf8: UnsafeRawBufferPointer($0)) }
    }

    static func basic(utf8 header: UnsafeRawBufferPointer) throws -> ClientCredentials {
        let malformed = TokendError(.unauthenticated, "malformed Basic credentials")
        let count = header.count
        var i = 0
        while i < count && header[i] == UInt8(ascii: " ") { i += 1 }
        let schemeStart = i
        while i < count && header[i] != UInt8(ascii: " ") { i += 1 }
        let scheme = UnsafeRawBufferPointer(rebasing: header[schemeStart..<i])
        // The credentials: everything after the space that ends the scheme.
        guard i + 1 < count, Self.isBasic(scheme) else {
            throw TokendError(.unauthenticated, "use HTTP Basic client authentication")
        }
        guard count - (i + 1) <= 2048 else { throw malformed }
        var start = i + 1, end = count
        while start < end && (header[start] == UInt8(ascii: " ") || header[start] == UInt8(ascii: "\t")) { start += 1 }
        while end > start && (header[end - 1] == UInt8(ascii: " ") || header[end - 1] == UInt8(ascii: "\t")) { end -= 1 }
        let encoded = UnsafeRawBufferPointer(rebasing: header[start..<end])
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1536) { scratch in
            guard let decodedCount = Base64.decode(encoded, into: UnsafeMutableRawBufferPointer(scratch)) else { throw malformed }
            let decoded = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[..<decodedCount])
            guard let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { throw malformed }
            let id: String, secret: String
            do {
                id = try FormBody.decode(UnsafeRawBufferPointer(rebasing: decoded[..<colon]))
                secret = try FormBody.decode(UnsafeRawBufferPointer(rebasing: decoded[(colon + 1)...]))
            } catch {
                throw malformed
            }
            guard !id.isEmpty else { throw malformed }
            return ClientCredentials(clientID: id, secret: secret)
        }
    }

    /// `basic` in any letter case.
    private static func isBasic(_ scheme: UnsafeRawBufferPointer) -> Bool {
        guard scheme.count == 5 else { return false }
        var folded: UInt8 = 0
        for (byte, expected) in zip(scheme, "basic".utf8) { folded |= (byte | 0x20) ^ expected }
        return folded == 0
    }

    /// Authenticates (`TokendError.unauthenticated` or `.unavailable` on failure) and records the
    /// client for the access log.
    static func authenticate(
        _ credentials: ClientCredentials, with authenticator: ClientAuthenticator, context: TokendRequestContext
    ) async throws -> ClientRecord {
        let client = try await authenticator.authenticate(clientID: credentials.clientID, secret: credentials.secret)
        context.annotations.clientID = client.id
        return client
    }

    /// `Authorization: Basic` only (Connect and the other header-authenticated dialects).
    static func authenticateBasic(_ request: Request, with authenticator: ClientAuthenticator, context: TokendRequestContext) async throws -> ClientRecord {
        guard let header = request.headers[.authorization] else {
            throw TokendError(.unauthenticated, "client authentication required")
        }
        return try await authenticate(basic(header), with: authenticator, context: context)
    }
}

/// RFC 4648 §4 base64 (standard alphabet, `=` padding required), decoding only.
enum Base64 {
    /// Decodes `input` into `output`; `nil` when it is not base64 or does not fit. As Foundation
    /// does, the unused low bits of the last character are not checked.
    static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        let count = input.count
        guard count % 4 == 0 else { return nil }
        guard count > 0 else { return 0 }
        var padding = 0
        if input[count - 1] == UInt8(ascii: "=") { padding += 1 }
        if input[count - 2] == UInt8(ascii: "=") { padding += 1 }
        let length = count / 4 * 3 - padding
        guard length <= output.count else { return nil }
        var out = 0
        var group = 0
        while group < count {
            let last = group + 4 == count
            var value: UInt32 = 0
            for j in 0..<4 {
                let c = input[group + j]
                let sextet: UInt8
                if last && j >= 4 - padding {
                    sextet = 0  // the padding positions checked above
                } else {
                    guard let v = Self.sextet(c) else { return nil }
                    sextet = v
                }
                value = value << 6 | UInt32(sextet)
            }
            let bytes = last ? 3 - padding : 3
            output[out] = UInt8(truncatingIfNeeded: value >> 16)
            if bytes > 1 { output[out + 1] = UInt8(truncatingIfNeeded: value >> 8) }
            if bytes > 2 { output[out + 2] = UInt8(truncatingIfNeeded: value) }
            out += bytes
            group += 4
        }
        return out
    }

    private static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
