import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
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

    static func response(_ result: IntrospectionResult, caller: ClientRecord, issuer: String, keys: SigningKeyRing) async throws -> Response {
        let key = try await keys.current()
        let jws: [UInt8]
        do {
            jws = try key.sign(payload: payload(result, audience: caller.id, issuer: issuer, issuedAt: Date()))
        } catch {
            throw TokendError.unavailable
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: jws)))
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
