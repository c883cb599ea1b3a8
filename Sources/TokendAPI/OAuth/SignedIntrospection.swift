import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import TokendCore
import TokendWire

/// RFC 9701 signed introspection answers: a JWS whose payload is
/// `{"aud":<caller>,"iat":…,"iss":…,"token_introspection":{…the JSON answer…}}`.
enum SignedIntrospection {
    static let mediaType = "application/token-introspection+jwt"

    static let headers: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = mediaType
        headers[.cacheControl] = "no-store"
        return headers
    }()

    /// The JWT claims set; members in sorted order, the answer as `IntrospectionJSON` writes it.
    static func payload(_ result: IntrospectionResult, audience: String, issuer: String, issuedAt: Date) -> [UInt8] {
        let answer = IntrospectionJSON.body(result)
        var json = JSONWriter(capacity: 96 + answer.readableBytes)
        json.beginObject()
        json.field("aud", string: audience)
        json.field("iat", int: Int64(issuedAt.timeIntervalSince1970))
        json.field("iss", string: issuer)
        json.field("token_introspection", json: answer.readableBytesView)
        json.endObject()
        return json.bytes
    }

    static func response(
        _ result: IntrospectionResult,
        caller: ClientRecord,
        issuer: String,
        keys: SigningKeyRing,
        cache: SignedAnswerCache
    ) async throws -> Response {
        let key = try await keys.current()
        let now = Date()
        if let cached = cache.answer(for: result, caller: caller.id, kid: key.kid, issuer: issuer, now: now) {
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: cached))
        }
        let jws: ByteBuffer
        do {
            jws = ByteBuffer(bytes: try key.sign(payload: payload(result, audience: caller.id, issuer: issuer, issuedAt: now)))
        } catch {
            throw TokendError.unavailable
        }
        cache.keep(jws, for: result, caller: caller.id, kid: key.kid, issuer: issuer, now: now)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: jws))
    }
}

/// Signed answers kept for reuse: one ES256 signature costs more than the rest of an answer from
/// memory. An answer is reused only for the same caller, the same result (the same token record,
/// which the caller's introspection has just found active; or "inactive"), the same key and
/// issuer, and for at most `maximumAge` after it was signed: so never after the record's
/// revocation or expiry (the introspection that precedes every lookup here answers inactive
/// then), never across a key rotation, and its `iat` is never older than `maximumAge`.
final class SignedAnswerCache: Sendable {
    static let maximumAge: TimeInterval = 30
    static let capacity = 10_000

    private struct Key: Hashable {
        let caller: String
        /// `nil` for the inactive answer, which is the same for every token.
        let token: TokenHash?
    }

    private struct Entry {
        let jws: ByteBuffer
        let kid: String
        let issuer: String
        let signedAt: Date
        let jti: String?
    }

    private let entries = Mutex<[Key: Entry]>([:])

    private static func key(_ result: IntrospectionResult, caller: String) -> (Key, jti: String?) {
        if case .active(let record) = result { return (Key(caller: caller, token: record.hash), record.jti) }
        return (Key(caller: caller, token: nil), nil)
    }

    func answer(for result: IntrospectionResult, caller: String, kid: String, issuer: String, now: Date) -> ByteBuffer? {
        let (key, jti) = Self.key(result, caller: caller)
        guard let entry = entries.withLock({ $0[key] }), entry.kid == kid, entry.issuer == issuer, entry.jti == jti,
            now.timeIntervalSince(entry.signedAt) < Self.maximumAge, entry.signedAt <= now
        else { return nil }
        return entry.jws
    }

    func keep(_ jws: ByteBuffer, for result: IntrospectionResult, caller: String, kid: String, issuer: String, now: Date) {
        let (key, jti) = Self.key(result, caller: caller)
        entries.withLock { entries in
            if entries[key] == nil, entries.count >= Self.capacity {
                for victim in entries.evictionBatch() { entries.removeValue(forKey: victim) }
            }
            entries[key] = Entry(jws: jws, kid: kid, issuer: issuer, signedAt: now, jti: jti)
        }
    }
}

/// RFC 6749 §5.1 token responses, with `Cache-Control: no-store` and `Pragma: no-cache`.
enum TokenResponseJSON {
    static func body(_ tokens: IssuedTokens) -> ByteBuffer {
        var json = JSONWriter(capacity: 192)
        json.beginObject()
        json.field("access_token", string: tokens.accessToken)
        json.field("expires_in", int: tokens.expiresIn)
        if let refresh = tokens.refreshToken { json.field("refresh_token", string: refresh) }
        if let scope = tokens.access.scope, !scope.isEmpty { json.field("scope", string: scope) }
        json.field("token_type", string: tokens.access.tokenType ?? "Bearer")
        json.endObject()
        return ByteBuffer(bytes: json.bytes)
    }

    static func response(_ tokens: IssuedTokens) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        headers[.pragma] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body(tokens)))
    }
}
