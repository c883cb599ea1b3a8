import CompressNIO
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing
import TokendAPI
import TokendCore
import TokendProto
import TokendTestSupport

/// Connect RPC on the public listener: IntrospectionService/Introspect and /Revoke, TokenService/IssueToken.
@Suite struct PublicConnectTests {
    static let introspectPath = "/tokend.v1.IntrospectionService/Introspect"
    static let revokePath = "/tokend.v1.IntrospectionService/Revoke"
    static let issuePath = "/tokend.v1.TokenService/IssueToken"

    private func introspectRequest(_ token: String) -> Tokend_V1_IntrospectRequest {
        var m = Tokend_V1_IntrospectRequest()
        m.token = token
        return m
    }

    private func revokeRequest(_ token: String) -> Tokend_V1_RevokeRequest {
        var m = Tokend_V1_RevokeRequest()
        m.token = token
        return m
    }

    @Test(arguments: StoreKind.allCases)
    func introspectWithProtoCodec(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let now = Int64(h.clock.now().timeIntervalSince1970)
            let issued = try await h.issue(
                IssueRequest(
                    clientID: "as",
                    subject: "user-1",
                    username: "alice",
                    scope: "read",
                    audiences: ["api"],
                    ttl: 300,
                    confirmation: TokendCore.Confirmation(jkt: "thumbprint"),
                    extra: ["tenant": "acme"]
                )
            )
            try await withPublicRouter(h.services) { client in
                let response = try await client.connect(Self.introspectPath, introspectRequest(issued.accessToken), authorization: rs.basic)
                #expect(response.headers[.cacheControl] == "no-store")
                let m = try response.message(Tokend_V1_IntrospectResponse.self)
                #expect(m.hasActive && m.active)
                #expect(m.clientID == "as")
                #expect(m.sub == "user-1")
                #expect(m.username == "alice")
                #expect(m.scope == "read")
                #expect(m.tokenType == "DPoP")
                #expect(m.aud == ["api"])
                #expect(m.iss == testIssuerURL)
                #expect(m.jti == issued.access.jti)
                #expect(m.iat == now)
                #expect(m.exp == now + 300)
                #expect(m.cnf.jkt == "thumbprint")
                #expect(m.ext == ["tenant": "acme"])
                #expect(m.grantID == issued.access.grantID)

                let unknown = try await client.connect(
                    Self.introspectPath,
                    introspectRequest("tkd_at_" + String(repeating: "Z", count: 43)),
                    authorization: rs.basic
                )
                let inactive = try unknown.message(Tokend_V1_IntrospectResponse.self)
                #expect(inactive.hasActive && !inactive.active)
                #expect(inactive.clientID.isEmpty && inactive.jti.isEmpty && inactive.exp == 0)
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func introspectWithJSONCodecUsesProtoFieldNames(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "user-1", username: "alice"))
            let revoked = try await h.issue(IssueRequest(clientID: "as"))
            _ = try await h.services.revoker.revoke(.token(TokenHash(token: revoked.accessToken)), reason: "test")
            try await withPublicRouter(h.services) { client in
                let response = try await client.connectJSON(Self.introspectPath, #"{"token":"\#(issued.accessToken)"}"#, authorization: rs.basic)
                #expect(response.status == .ok, "\(response.text)")
                #expect(response.headers[.contentType] == "application/json")
                let json = try #require(response.json)
                #expect(json["active"] == true)
                #expect(json["client_id"] == "as", "\(response.text)")
                #expect(json["token_type"] == "Bearer")
                #expect(json["grant_id"] == .string(issued.access.grantID))
                #expect(json["clientId"] == nil && json["tokenType"] == nil, "lowerCamelCase names: \(response.text)")
                // proto3 JSON: int64 travels as a string.
                #expect(json["exp"] == .string(String(Int64(issued.access.expiresAt.timeIntervalSince1970))))

                // The request may use the camelCase JSON name of a field too.
                let camel = try await client.connectJSON(
                    Self.introspectPath,
                    #"{"token":"\#(issued.accessToken)","tokenTypeHint":"access_token"}"#,
                    authorization: rs.basic
                )
                #expect(camel.json?["active"] == true)

                let inactive = try await client.connectJSON(Self.introspectPath, #"{"token":"\#(revoked.accessToken)"}"#, authorization: rs.basic)
                #expect(inactive.status == .ok)
                #expect(inactive.json == ["active": false], "\(inactive.text)")
                #expect(inactive.text.contains(#""active""#))
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func revokeOverConnect(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let owner = try await h.caller("as", [.issue])
            let stranger = try await h.caller("stranger", [.introspect])
            let a = try await h.issue(IssueRequest(clientID: "as", refresh: true))
            let b = try await h.issue(IssueRequest(clientID: "as"))
            try await withPublicRouter(h.services) { client in
                // Proto: revoking the refresh token revokes the grant.
                let response = try await client.connect(Self.revokePath, revokeRequest(try #require(a.refreshToken)), authorization: owner.basic)
                _ = try response.message(Tokend_V1_RevokeResponse.self)
                #expect(try await client.isActive(a.accessToken, as: rs) == false)
                #expect(try await client.isActive(try #require(a.refreshToken), as: rs) == false)

                // Someone else's token without role revoke: refused, token stays active.
                let refused = try await client.connect(Self.revokePath, revokeRequest(b.accessToken), authorization: stranger.basic)
                refused.expectConnectError(.forbidden, "permission_denied")
                #expect(try await client.isActive(b.accessToken, as: rs))

                // JSON: an unknown token is fine, then the real one.
                let unknown = try await client.connectJSON(
                    Self.revokePath,
                    #"{"token":"tkd_at_\#(String(repeating: "Q", count: 43))"}"#,
                    authorization: owner.basic
                )
                #expect(unknown.status == .ok)
                #expect(unknown.json == [:], "\(unknown.text)")
                let json = try await client.connectJSON(
                    Self.revokePath,
                    #"{"token":"\#(b.accessToken)","token_type_hint":"access_token"}"#,
                    authorization: owner.basic
                )
                #expect(json.status == .ok)
                #expect(try await client.isActive(b.accessToken, as: rs) == false)

                let empty = try await client.connect(Self.revokePath, revokeRequest(""), authorization: owner.basic)
                empty.expectConnectError(.badRequest, "invalid_argument")
                let anonymous = try await client.connect(Self.revokePath, revokeRequest(b.accessToken), authorization: nil)
                anonymous.expectConnectError(.unauthorized, "unauthenticated")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func issueTokenOverConnect(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let authServer = try await h.caller("as", [.issue])
            try await withPublicRouter(h.services) { client in
                var request = Tokend_V1_IssueTokenRequest()
                request.subject = "user-7"
                request.scope = "read write"
                request.audiences = ["api"]
                request.ttlSeconds = 120
                request.refresh = true
                let response = try await client.connect(Self.issuePath, request, authorization: authServer.basic)
                let issued = try response.message(Tokend_V1_IssueTokenResponse.self)
                #expect(issued.accessToken.hasPrefix("tkd_at_") && OpaqueToken.isWellFormed(issued.accessToken))
                #expect(issued.refreshToken.hasPrefix("tkd_rt_") && OpaqueToken.isWellFormed(issued.refreshToken))
                #expect(issued.tokenType == "Bearer")
                #expect(issued.expiresIn == 120)
                #expect(issued.scope == "read write")
                #expect(!issued.jti.isEmpty && !issued.grantID.isEmpty)

                let answer = try await client.introspect(issued.accessToken, as: rs)
                #expect(answer.json?["client_id"] == "as", "defaults to the caller")
                #expect(answer.json?["sub"] == "user-7")
                #expect(answer.json?["jti"] == .string(issued.jti))
                #expect(answer.json?["exp"] == JSON(Int64(h.clock.now().timeIntervalSince1970) + 120))

                let json = try await client.connectJSON(Self.issuePath, #"{"subject":"user-8","ttl_seconds":"60"}"#, authorization: authServer.basic)
                #expect(json.status == .ok, "\(json.text)")
                let token = try #require(json.json?["access_token"]?.string, "\(json.text)")
                #expect(json.json?["expires_in"] == "60")
                #expect(try await client.isActive(token, as: rs))

                let invalid = try await client.connectJSON(Self.issuePath, #"{"subject":"u","scope":"bad\"scope"}"#, authorization: authServer.basic)
                invalid.expectConnectError(.badRequest, "invalid_argument")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func gzipInBothDirections(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "zipped"))
            try await withPublicRouter(h.services) { client in
                let body = try gzip(try introspectRequest(issued.accessToken).serializedBytes())
                let response = try await client.send(
                    Self.introspectPath,
                    headers: [
                        .contentType: "application/proto", .contentEncoding: "gzip", .acceptEncoding: "gzip, deflate", .authorization: rs.basic,
                    ],
                    body: body
                )
                #expect(response.status == .ok, "\(response.status.code)")
                #expect(response.headers[.contentEncoding] == "gzip")
                let m = try Tokend_V1_IntrospectResponse(serializedBytes: try gunzip(response.body))
                #expect(m.active && m.sub == "zipped")

                // gzip request, identity response.
                let plain = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/json", .contentEncoding: "gzip", .authorization: rs.basic],
                    body: try gzip(Array(#"{"token":"\#(issued.accessToken)"}"#.utf8))
                )
                #expect(plain.headers[.contentEncoding] == nil)
                #expect(plain.json?["sub"] == "zipped", "\(plain.text)")

                // JSON response gzipped.
                let zippedJSON = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/json", .acceptEncoding: "gzip", .authorization: rs.basic],
                    body: ByteBuffer(string: #"{"token":"\#(issued.accessToken)"}"#)
                )
                #expect(zippedJSON.headers[.contentEncoding] == "gzip")
                let decoded = try JSONDecoder().decode(JSON.self, from: Data(try gunzip(zippedJSON.body)))
                #expect(decoded["active"] == true)

                // q=0 refuses gzip.
                let refused = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/proto", .acceptEncoding: "gzip;q=0", .authorization: rs.basic],
                    body: ByteBuffer(bytes: try introspectRequest(issued.accessToken).serializedBytes() as [UInt8])
                )
                #expect(refused.headers[.contentEncoding] == nil)
                #expect(try refused.message(Tokend_V1_IntrospectResponse.self).active)

                // Not gzip at all, and a gzip bomb.
                let corrupt = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/proto", .contentEncoding: "gzip", .authorization: rs.basic],
                    body: ByteBuffer(string: "definitely not gzip")
                )
                corrupt.expectConnectError(.badRequest, "invalid_argument")
                let bomb = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/proto", .contentEncoding: "gzip", .authorization: rs.basic],
                    body: try gzip([UInt8](repeating: 0, count: 1 << 20))
                )
                #expect(bomb.status == .contentTooLarge, "\(bomb.status.code) \(bomb.text)")
                #expect(bomb.json?["code"] == "resource_exhausted")

                let brotli = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/proto", .contentEncoding: "br", .authorization: rs.basic],
                    body: ByteBuffer(bytes: try introspectRequest(issued.accessToken).serializedBytes() as [UInt8])
                )
                brotli.expectConnectError(.notImplemented, "unimplemented")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func connectErrors(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let authServer = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            let request = introspectRequest(issued.accessToken)
            try await withPublicRouter(h.services) { client in
                // 401 unauthenticated: none, wrong, malformed; client_secret_post does not exist here.
                for authorization in [nil, basicAuthorization(id: "rs", secret: "wrong"), "Basic !!!", "Bearer \(rs.secret)"] {
                    let response = try await client.connect(Self.introspectPath, request, authorization: authorization)
                    response.expectConnectError(.unauthorized, "unauthenticated")
                    #expect(response.headers[.cacheControl] == "no-store")
                }
                // 403 permission_denied.
                let noIntrospect = try await client.connect(Self.introspectPath, request, authorization: authServer.basic)
                noIntrospect.expectConnectError(.forbidden, "permission_denied")
                var issue = Tokend_V1_IssueTokenRequest()
                issue.subject = "u"
                let noIssue = try await client.connect(Self.issuePath, issue, authorization: rs.basic)
                noIssue.expectConnectError(.forbidden, "permission_denied")
                // 400 invalid_argument.
                let garbage = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/proto", .authorization: rs.basic],
                    body: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
                )
                garbage.expectConnectError(.badRequest, "invalid_argument")
                let badJSON = try await client.connectJSON(Self.introspectPath, #"{"token": 12"#, authorization: rs.basic)
                badJSON.expectConnectError(.badRequest, "invalid_argument")
                let empty = try await client.connect(Self.introspectPath, introspectRequest(""), authorization: rs.basic)
                empty.expectConnectError(.badRequest, "invalid_argument")
                let version = try await client.connect(
                    Self.introspectPath,
                    request,
                    authorization: rs.basic,
                    extraHeaders: [HTTPField.Name("Connect-Protocol-Version")!: "2"]
                )
                version.expectConnectError(.badRequest, "invalid_argument")
                // 415 unsupported codec.
                let text = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "text/plain", .authorization: rs.basic],
                    body: ByteBuffer(string: issued.accessToken)
                )
                #expect(text.status == .unsupportedMediaType)
                #expect(text.json?["code"]?.string != nil && text.json?["message"]?.string != nil, "\(text.text)")
                // 413.
                let large = try await client.send(
                    Self.introspectPath,
                    headers: [.contentType: "application/proto", .authorization: rs.basic],
                    body: ByteBuffer(repeating: 0, count: 64 * 1024 + 1)
                )
                #expect(large.status == .contentTooLarge)
                #expect(large.json?["code"] == "resource_exhausted")
                // Unknown method.
                let unknown = try await client.connect("/tokend.v1.IntrospectionService/Nope", request, authorization: rs.basic)
                #expect(unknown.status == .notFound)
                #expect(unknown.json?["code"] == "unimplemented")
                // No error leaks the token or the secret.
                for response in [noIntrospect, garbage, empty, text] {
                    #expect(!response.text.contains(issued.accessToken) && !response.text.contains(rs.secret))
                }
            }
        }
    }

    /// The 64 KiB limit applies to the body after gunzip: exactly 65,536 bytes are read, one more is
    /// 413, however small the compressed body is.
    @Test(arguments: StoreKind.allCases)
    func gzipLimitIsExactlySixtyFourKiBAfterDecompression(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            try await withPublicRouter(h.services) { client in
                func body(decompressed size: Int) throws -> ByteBuffer {
                    let head = #"{"token":""#
                    let tail = #""}"#
                    let json = head + String(repeating: "A", count: size - head.utf8.count - tail.utf8.count) + tail
                    #expect(json.utf8.count == size)
                    return try gzip(Array(json.utf8))
                }
                let headers: HTTPFields = [.contentType: "application/json", .contentEncoding: "gzip", .authorization: rs.basic]
                let atLimit = try await client.send(Self.introspectPath, headers: headers, body: try body(decompressed: 64 * 1024))
                #expect(atLimit.status == .ok, "\(atLimit.status) \(atLimit.text)")
                #expect(atLimit.json?["active"] == false)
                let compressed = try body(decompressed: 64 * 1024 + 1)
                #expect(compressed.readableBytes < 1024, "the bomb is small on the wire: \(compressed.readableBytes) bytes")
                let over = try await client.send(Self.introspectPath, headers: headers, body: compressed)
                #expect(over.status == .contentTooLarge)
                #expect(over.json?["code"] == "resource_exhausted")
            }
        }
    }

    /// A gzip body is one whole gzip member or invalid_argument: cut short anywhere (even by only
    /// its 8-byte trailer, the CRC-32 and length zlib checks last), corrupted, empty, or followed by
    /// other bytes (a second member), never the part that inflated. The largest bomb a body can
    /// carry (64 KiB on the wire) is 413 resource_exhausted, inflated no further than the limit.
    @Test(arguments: StoreKind.allCases)
    func gzipCutShortCorruptOrFollowedByMoreIsInvalidArgument(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            _ = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as", subject: "zipped"))
            try await withPublicRouter(h.services) { client in
                let headers: HTTPFields = [.contentType: "application/proto", .contentEncoding: "gzip", .authorization: rs.basic]
                let whole = Array(try gzip(try introspectRequest(issued.accessToken).serializedBytes()).readableBytesView)
                let ok = try await client.send(Self.introspectPath, headers: headers, body: ByteBuffer(bytes: whole))
                #expect(try ok.message(Tokend_V1_IntrospectResponse.self).active)

                func flipped(_ index: Int) -> [UInt8] {
                    var bytes = whole
                    bytes[index] ^= 0x01
                    return bytes
                }
                let refused: [(String, [UInt8])] = [
                    ("without its trailer", Array(whole.dropLast(8))),
                    ("without its last byte", Array(whole.dropLast())),
                    ("cut in the middle", Array(whole.prefix(whole.count / 2))),
                    ("the 10-byte header alone", Array(whole.prefix(10))),
                    ("empty", []),
                    ("a wrong CRC-32", flipped(whole.count - 8)),
                    ("a wrong length", flipped(whole.count - 4)),
                    ("a corrupt deflate stream", flipped(10)),
                    ("a byte after the member", whole + [0]),
                    ("a second member", whole + whole),
                    ("its trailer twice", whole + whole.suffix(8)),
                ]
                for (name, body) in refused {
                    let response = try await client.send(Self.introspectPath, headers: headers, body: ByteBuffer(bytes: body))
                    #expect(
                        response.status == .badRequest && response.json?["code"] == "invalid_argument",
                        "\(name): \(response.status.code) \(response.text)"
                    )
                }

                // 64 MiB of zeros: about 64 KiB of gzip, under the wire limit.
                let bomb = try gzip([UInt8](repeating: 0, count: 64 << 20))
                #expect(bomb.readableBytes <= 64 * 1024, "\(bomb.readableBytes) bytes")
                let tooLarge = try await client.send(Self.introspectPath, headers: headers, body: bomb)
                #expect(tooLarge.status == .contentTooLarge, "\(tooLarge.status.code) \(tooLarge.text)")
                #expect(tooLarge.json?["code"] == "resource_exhausted")
            }
        }
    }

    /// Watch's one envelope, gzip-compressed (flags 0x01, `Connect-Content-Encoding: gzip`): the same
    /// rules as a unary body, answered in the stream's end (200, then an end-of-stream envelope with
    /// the Connect code): a bomb is resource_exhausted, a member cut short or corrupt invalid_argument.
    /// (A body taken as whole would start a live stream that never ends: the time limit fails it. It
    /// guards against that hang only, so it is generous: beside two CPU hogs and the parallel suites,
    /// this test once took 78 s where it takes about 1 s on an idle machine.)
    @Test(.timeLimit(.minutes(10)), arguments: StoreKind.allCases)
    func watchEnvelopeGzipBombAndCutShortGzip(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            try await withPublicRouter(h.services) { client in
                func watch(_ payload: [UInt8]) async throws -> String? {
                    let length = UInt32(payload.count)
                    let prefix: [UInt8] = [0x01, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
                    let envelope = prefix + payload
                    let response = try await client.send(
                        "/tokend.v1.RevocationService/Watch",
                        headers: [
                            .contentType: "application/connect+json", HTTPField.Name("Connect-Content-Encoding")!: "gzip", .authorization: rs.basic,
                        ],
                        body: ByteBuffer(bytes: envelope)
                    )
                    #expect(response.status == .ok)
                    let bytes = Array(response.body.readableBytesView)
                    // The last envelope is the end of the stream (flags 0x02): its JSON holds the error.
                    guard bytes.count >= 5, bytes[0] & 0x02 != 0 else { return "no end-of-stream envelope: \(bytes)" }
                    let end = try JSONDecoder().decode(JSON.self, from: Data(bytes[5...]))
                    return end["error"]?["code"]?.string
                }
                let bomb = Array(try gzip([UInt8](repeating: 0x20, count: 16 << 20)).readableBytesView)
                #expect(try await watch(bomb) == "resource_exhausted")
                let whole = Array(try gzip(Array(#"{"after_seq":"0"}"#.utf8)).readableBytesView)
                #expect(try await watch(Array(whole.dropLast(8))) == "invalid_argument")
                #expect(try await watch(whole + [0]) == "invalid_argument")
                #expect(try await watch(Array(whole.prefix(12))) == "invalid_argument")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func storeOutageIs503Unavailable(kind: StoreKind) async throws {
        try await withHarness(kind) { h in
            let rs = try await h.caller("rs", [.introspect])
            let authServer = try await h.caller("as", [.issue])
            let issued = try await h.issue(IssueRequest(clientID: "as"))
            let services = h.storeOnlyServices()
            try await withPublicRouter(services) { client in
                let ok = try await client.connect(Self.introspectPath, introspectRequest(issued.accessToken), authorization: rs.basic)
                #expect(try ok.message(Tokend_V1_IntrospectResponse.self).active)
                _ = try await client.connect(Self.revokePath, revokeRequest("garbage"), authorization: authServer.basic)

                // The store goes away; both callers still authenticate from the authenticator's cache.
                try await h.takeDown()
                let introspect = try await client.connect(Self.introspectPath, introspectRequest(issued.accessToken), authorization: rs.basic)
                introspect.expectConnectError(.serviceUnavailable, "unavailable")
                #expect(introspect.headers[.retryAfter] != nil)
                let revoke = try await client.connect(Self.revokePath, revokeRequest(issued.accessToken), authorization: authServer.basic)
                revoke.expectConnectError(.serviceUnavailable, "unavailable")
                var issue = Tokend_V1_IssueTokenRequest()
                issue.subject = "u"
                let issueResponse = try await client.connect(Self.issuePath, issue, authorization: authServer.basic)
                issueResponse.expectConnectError(.serviceUnavailable, "unavailable")

                // Past the cache: client authentication itself cannot reach the store.
                h.clock.advance(by: 10)
                let auth = try await client.connect(Self.introspectPath, introspectRequest(issued.accessToken), authorization: rs.basic)
                auth.expectConnectError(.serviceUnavailable, "unavailable")
                #expect(auth.headers[.retryAfter] != nil)
            }
        }
    }
}
