import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SwiftProtobuf
import Testing
import TokendAPI
import TokendCore
import TokendTestSupport

// Shared set-up for the HTTP tests: a fresh store, services over it, registered clients, request
// builders and a small JSON value type for comparing whole response bodies.

let testAdminToken = "test-admin-token"
let testIssuerURL = "https://tokend.test"

/// A registered client and its secret.
struct Caller: Sendable {
    let id: String
    let secret: String

    /// `Authorization: Basic` with RFC 6749 §2.3.1's form-encoding of id and secret.
    var basic: String { basicAuthorization(id: id, secret: secret) }

    var basicHeaders: HTTPFields { [.authorization: basic] }
}

/// What the routers are built from: one replica's decisions and the metrics they report to.
struct Services: Sendable {
    let tokend: Tokend
    let metrics: TokendMetrics

    /// A replica over `store` with memory (as `tokend serve` runs it), driven by `now`.
    init(store: any TokendStore, issuerURL: String = testIssuerURL, now: @escaping Now, cacheEntries: Int = 10_000) {
        let replica = Replica(store: store, cacheEntries: cacheEntries, maxStaleness: 5, now: now, logger: TestEnvironment.logger)
        let metrics = TokendMetrics()
        self.tokend = Tokend(replica: replica, issuer: IssuerIdentifier(issuerURL), logger: TestEnvironment.logger, metrics: metrics)
        self.metrics = metrics
    }

    func publicRouter(kubernetes: KubernetesNaming = KubernetesNaming()) -> Router<TokendRequestContext> {
        buildPublicRouter(tokend, metrics: metrics, logger: TestEnvironment.logger, kubernetes: kubernetes)
    }

    /// The introspection fast path of the public listener, as `tokend serve` builds it.
    func fastPath() -> IntrospectionFastPath {
        IntrospectionFastPath(tokend, metrics: metrics, logger: TestEnvironment.logger)
    }

    func adminRouter() -> Router<TokendRequestContext> {
        buildAdminRouter(tokend, adminToken: testAdminToken, metrics: metrics, logger: TestEnvironment.logger)
    }

    var registry: ClientRegistry { tokend.registry }
    var issuer: TokenIssuer { tokend.issuer }
    var revoker: Revoker { tokend.revoker }
    var replica: Replica { tokend.replica }
}

/// One fresh, migrated store with a replica over it, driven by a manual clock.
struct Harness: Sendable {
    let kind: StoreKind
    let store: any TokendStore
    let clock: ManualClock
    let services: Services
    /// Closes the store's connection for good, as when its database has gone away: every later
    /// call fails (see `withStore(_:takeDown:)`).
    let takeDown: @Sendable () async throws -> Void

    init(kind: StoreKind, store: any TokendStore, takeDown: @escaping @Sendable () async throws -> Void) {
        self.kind = kind
        self.store = store
        self.takeDown = takeDown
        let clock = ManualClock()
        self.clock = clock
        // As `tokend serve` runs it: replica memory (token cache + revocation view) kept current by
        // a feed, so these tests exercise the memory path as well as the store path.
        self.services = Services(store: store, now: clock.now)
    }

    /// Registers a client through the registry and returns its secret.
    func caller(_ id: String, _ roles: [Role], audiences: [String] = []) async throws -> Caller {
        let (_, secret) = try await services.registry.create(id: id, roles: roles.map(\.rawValue), audiences: audiences)
        return Caller(id: id, secret: secret)
    }

    func issue(_ request: IssueRequest) async throws -> IssuedTokens {
        try await services.issuer.issue(request)
    }

    /// Services over the same store without memory, so that every answer asks the store: what the
    /// outage tests answer through once they have taken the store down.
    func storeOnlyServices() -> Services {
        Services(store: store, now: clock.now, cacheEntries: 0)
    }
}

func withHarness<T: Sendable>(_ kind: StoreKind, _ body: @Sendable (Harness) async throws -> T) async throws -> T {
    try await withStore(kind) { store, takeDown in
        let harness = Harness(kind: kind, store: store, takeDown: takeDown)
        try await harness.services.replica.feed?.sync()
        return try await body(harness)
    }
}

/// How a test reaches the public listener.
enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// The router in-process, with no socket.
    case router
    /// A socket to a live HTTP/1.1 listener as `tokend serve` builds it, with the introspection
    /// fast path in its pipeline: what the fast path answers and what it hands to the router.
    case socket

    var testDescription: String { rawValue }
}

/// Runs `body` against the public router (in-process, no socket).
func withPublicRouter<T: Sendable>(_ services: Services, _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
    let app = Application(router: services.publicRouter(), logger: TestEnvironment.logger)
    return try await app.test(.router, body)
}

/// Runs `body` against the public listener over `transport`. Over a socket, `body` also gets the
/// fast path, to tell which answers it gave.
func withPublicRouter<T: Sendable>(
    _ services: Services,
    over transport: Transport,
    _ body: @Sendable (any TestClientProtocol, IntrospectionFastPath?) async throws -> T
) async throws -> T {
    switch transport {
    case .router:
        return try await withPublicRouter(services) { try await body($0, nil) }
    case .socket:
        let fastPath = services.fastPath()
        return try await publicListener(services, fastPath: fastPath).test(.live) { client in
            try await fastPath.untilReadingMisses()
            return try await body(client, fastPath)
        }
    }
}

/// The public listener as `tokend serve` builds it, on a free loopback port, with `fastPath` or
/// none; for `test(.live)`.
func publicListener(_ services: Services, fastPath: IntrospectionFastPath?) -> some ApplicationProtocol {
    Application(
        router: services.publicRouter(),
        server: .tokend(tls: nil, fastPath: fastPath),
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        services: fastPath.map { [$0.lookupService] } ?? [],
        logger: TestEnvironment.logger
    )
}

/// `withPublicRouter(_:over:_:)` for a test that does not look at the fast path.
func withPublicRouter<T: Sendable>(
    _ services: Services,
    over transport: Transport,
    _ body: @Sendable (any TestClientProtocol) async throws -> T
) async throws -> T {
    try await withPublicRouter(services, over: transport) { client, _ in try await body(client) }
}

/// Runs `body` against the public router with other TokenReview name prefixes.
func withPublicRouter<T: Sendable>(
    _ services: Services,
    kubernetes: KubernetesNaming,
    _ body: @Sendable (any TestClientProtocol) async throws -> T
) async throws -> T {
    let app = Application(router: services.publicRouter(kubernetes: kubernetes), logger: TestEnvironment.logger)
    return try await app.test(.router, body)
}

/// Runs `body` against the admin router (in-process, no socket).
func withAdminRouter<T: Sendable>(_ services: Services, _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
    let app = Application(router: services.adminRouter(), logger: TestEnvironment.logger)
    return try await app.test(.router, body)
}

// MARK: - Requests

/// `application/x-www-form-urlencoded` component: everything but RFC 3986 unreserved is percent-encoded.
func formEncode(_ value: String) -> String {
    var out = ""
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.append(Character(Unicode.Scalar(byte)))
        case UInt8(ascii: " "):
            out.append("+")
        default:
            out += String(format: "%%%02X", byte)
        }
    }
    return out
}

func basicAuthorization(id: String, secret: String) -> String {
    "Basic " + Data("\(formEncode(id)):\(formEncode(secret))".utf8).base64EncodedString()
}

func formBody(_ pairs: KeyValuePairs<String, String>) -> ByteBuffer {
    ByteBuffer(string: pairs.map { "\(formEncode($0.key))=\(formEncode($0.value))" }.joined(separator: "&"))
}

let formHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

func formHeaders(_ caller: Caller) -> HTTPFields {
    [.contentType: "application/x-www-form-urlencoded", .authorization: caller.basic]
}

extension TestClientProtocol {
    /// Executes a request and checks what holds for every answer tokend gives: never a 500, and
    /// every error is a JSON object (never empty, HTML or a stack trace).
    func send(
        _ uri: String,
        method: HTTPRequest.Method = .post,
        headers: HTTPFields = [:],
        body: ByteBuffer? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        let response = try await execute(uri: uri, method: method, headers: headers, body: body)
        #expect(response.status.code != 500, "\(method) \(uri) answered 500", sourceLocation: sourceLocation)
        if response.status.code >= 400 {
            #expect(
                response.headers[.contentType] == "application/json",
                "\(method) \(uri) \(response.status.code): content type",
                sourceLocation: sourceLocation
            )
            #expect(
                response.json?.object != nil,
                "\(method) \(uri) \(response.status.code): body is not a JSON object: \(response.text)",
                sourceLocation: sourceLocation
            )
        }
        return response
    }

    /// `POST /oauth2/introspect` authenticated with client_secret_basic.
    func introspect(_ token: String, as caller: Caller, sourceLocation: SourceLocation = #_sourceLocation) async throws -> TestResponse {
        try await send("/oauth2/introspect", headers: formHeaders(caller), body: formBody(["token": token]), sourceLocation: sourceLocation)
    }

    /// `POST /oauth2/revoke` authenticated with client_secret_basic.
    func revoke(
        _ token: String,
        hint: String? = nil,
        as caller: Caller,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        let body = hint.map { formBody(["token": token, "token_type_hint": $0]) } ?? formBody(["token": token])
        return try await send("/oauth2/revoke", headers: formHeaders(caller), body: body, sourceLocation: sourceLocation)
    }

    /// Whether `/oauth2/introspect` reports the token active (and checks the answer is 200).
    func isActive(_ token: String, as caller: Caller, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Bool {
        let response = try await introspect(token, as: caller, sourceLocation: sourceLocation)
        #expect(response.status == .ok, sourceLocation: sourceLocation)
        guard let active = response.json?["active"] else {
            Issue.record("no active member in \(response.text)", sourceLocation: sourceLocation)
            return false
        }
        if active == false { #expect(response.json == ["active": false], sourceLocation: sourceLocation) }
        return active == true
    }

    /// A Connect unary call with a protobuf body.
    func connect<M: SwiftProtobuf.Message>(
        _ path: String,
        _ message: M,
        authorization: String?,
        extraHeaders: HTTPFields = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/proto"]
        if let authorization { headers[.authorization] = authorization }
        headers.append(contentsOf: extraHeaders)
        return try await send(
            path,
            headers: headers,
            body: ByteBuffer(bytes: try message.serializedBytes() as [UInt8]),
            sourceLocation: sourceLocation
        )
    }

    /// A Connect unary call with a JSON body.
    func connectJSON(
        _ path: String,
        _ json: String,
        authorization: String?,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let authorization { headers[.authorization] = authorization }
        return try await send(path, headers: headers, body: ByteBuffer(string: json), sourceLocation: sourceLocation)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: JSON? { try? JSONDecoder().decode(JSON.self, from: Data(body.readableBytesView)) }

    /// The body as a protobuf message, after checking the Connect success shape.
    func message<M: SwiftProtobuf.Message>(_ type: M.Type, sourceLocation: SourceLocation = #_sourceLocation) throws -> M {
        #expect(status == .ok, "\(status.code): \(text)", sourceLocation: sourceLocation)
        #expect(headers[.contentType] == "application/proto", sourceLocation: sourceLocation)
        return try M(serializedBytes: Array(body.readableBytesView))
    }

    /// Checks a Connect error: status, `code`, a non-empty `message`.
    func expectConnectError(_ status: HTTPResponse.Status, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == status, "\(self.status.code): \(text)", sourceLocation: sourceLocation)
        #expect(json?["code"] == .string(code), "body: \(text)", sourceLocation: sourceLocation)
        #expect((json?["message"]?.string ?? "").isEmpty == false, "body: \(text)", sourceLocation: sourceLocation)
    }

    /// Checks an OAuth error: status, `error`, and `Cache-Control: no-store`.
    func expectOAuthError(_ status: HTTPResponse.Status, _ error: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(self.status == status, "\(self.status.code): \(text)", sourceLocation: sourceLocation)
        #expect(json?["error"] == .string(error), "body: \(text)", sourceLocation: sourceLocation)
        #expect(headers[.cacheControl] == "no-store", sourceLocation: sourceLocation)
    }
}

func gzip(_ bytes: [UInt8]) throws -> ByteBuffer {
    var buffer = ByteBuffer(bytes: bytes)
    return try buffer.compress(with: .gzip())
}

func gunzip(_ buffer: ByteBuffer) throws -> [UInt8] {
    var buffer = buffer
    return Array(try buffer.decompress(with: .gzip()).readableBytesView)
}

// MARK: - JSON values

/// A parsed JSON value: whole bodies compare with `==` against literals such as `["active": false]`,
/// so an extra member fails a test. Booleans and numbers stay distinct.
enum JSON: Equatable, Sendable, Decodable, CustomStringConvertible,
    ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByStringLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral
{
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(from decoder: any Swift.Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    init(dictionaryLiteral elements: (String, JSON)...) { self = .object(Dictionary(uniqueKeysWithValues: elements)) }
    init(arrayLiteral elements: JSON...) { self = .array(elements) }
    init(stringLiteral value: String) { self = .string(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(integerLiteral value: Int64) { self = .number(Double(value)) }
    init(nilLiteral: ()) { self = .null }
    init(_ value: Int64) { self = .number(Double(value)) }

    subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    var object: [String: JSON]? { if case .object(let v) = self { return v } else { return nil } }
    var string: String? { if case .string(let v) = self { return v } else { return nil } }
    var number: Double? { if case .number(let v) = self { return v } else { return nil } }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let v): return "\(v)"
        case .number(let v): return "\(v)"
        case .string(let v): return "\"\(v)\""
        case .array(let v): return "[" + v.map(\.description).joined(separator: ",") + "]"
        case .object(let v): return "{" + v.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }
}

@Suite struct JSONHelperTests {
    @Test func keepsBooleansNumbersAndMembersApart() throws {
        let value = try JSONDecoder().decode(JSON.self, from: Data(#"{"active":false,"n":1,"b":true,"s":"x","a":[1]}"#.utf8))
        #expect(value == ["active": false, "n": 1, "b": true, "s": "x", "a": [1]])
        #expect(value != ["active": false])
        #expect(value["n"] != true)
        #expect(value["b"] != 1)
    }

    @Test func formEncodingFollowsRFC6749() {
        #expect(formEncode("a:b@c d+e/%") == "a%3Ab%40c+d%2Be%2F%25")
        #expect(basicAuthorization(id: "a:b", secret: "s") == "Basic " + Data("a%3Ab:s".utf8).base64EncodedString())
    }
}

extension IntrospectionFastPath {
    /// Returns once the listener's service that reads cache misses runs (it starts beside the
    /// listener; until it runs, misses go to the router).
    func untilReadingMisses() async throws {
        try await poll(until: "the fast path reads cache misses") { readsCacheMisses }
    }
}
