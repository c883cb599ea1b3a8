import Crypto
import Foundation
import Logging
import Synchronization

/// One ES256 key, loaded: the private key, its public JWK and the JWS header that names it.
public struct SigningKey: Sendable {
    public let kid: String
    private let box: KeyBox
    var privateKey: P256.Signing.PrivateKey { box.key }
    public let createdAt: Date
    public let retiresAt: Date?
    /// base64url of `{"alg":"ES256","kid":…,"typ":"token-introspection+jwt"}` plus the dot: the
    /// start of every signing input, built once.
    let headerPrefix: [UInt8]

    public static let algorithm = "ES256"
    /// RFC 9701 §5: the JWS `typ` of a signed introspection answer.
    public static let type = "token-introspection+jwt"

    init(_ stored: StoredSigningKey) throws {
        box = KeyBox(try P256.Signing.PrivateKey(rawRepresentation: stored.privateKey))
        kid = stored.kid
        createdAt = stored.createdAt
        retiresAt = stored.retiresAt
        let header = #"{"alg":"ES256","kid":"\#(kid)","typ":"\#(Self.type)"}"#
        headerPrefix = Array((Base64URL.encode(Array(header.utf8)) + ".").utf8)
    }

    /// A new random key; its `kid` is its RFC 7638 JWK thumbprint, shortened to 128 bits (22
    /// characters, the shape of tokend's other identifiers: a 43-character run in a log line is
    /// what the secret scanners of the tests look for).
    static func generate(now: Date) -> StoredSigningKey {
        let key = P256.Signing.PrivateKey()
        let (x, y) = coordinates(key.publicKey)
        return StoredSigningKey(
            kid: thumbprint(x: x, y: y),
            algorithm: algorithm,
            privateKey: Array(key.rawRepresentation),
            createdAt: now,
            retiresAt: nil
        )
    }

    /// The public key's affine coordinates, base64url (RFC 7518 §6.2.1).
    static func coordinates(_ key: P256.Signing.PublicKey) -> (x: String, y: String) {
        let point = Array(key.x963Representation)  // 0x04 || X || Y
        return (Base64URL.encode(Array(point[1..<33])), Base64URL.encode(Array(point[33..<65])))
    }

    /// RFC 7638 §3.2 (first 16 bytes): SHA-256 over the required members in lexicographic order, no whitespace.
    static func thumbprint(x: String, y: String) -> String {
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
        return Base64URL.encode(Array(SHA256.hash(data: Array(canonical.utf8)).prefix(16)))
    }

    /// The public JWK (RFC 7517) as published at `/.well-known/jwks.json`.
    public var publicJWK: [String: String] {
        let (x, y) = Self.coordinates(privateKey.publicKey)
        return ["kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": Self.algorithm]
    }

    /// The JWS Compact Serialization (RFC 7515 §7.1) of `payload` under this key, as UTF-8 bytes:
    /// ES256, the signature as R || S (RFC 7518 §3.4).
    public func sign(payload: [UInt8]) throws -> [UInt8] {
        var input = headerPrefix
        input.reserveCapacity(headerPrefix.count + payload.count * 4 / 3 + 90)
        Base64URL.encode(payload, into: &input)
        let signature = try privateKey.signature(for: input)
        input.append(UInt8(ascii: "."))
        Base64URL.encode(signature.rawRepresentation, into: &input)
        return input
    }
}

/// swift-crypto does not mark its key types `Sendable`. The key is immutable after creation, and
/// BoringSSL signs with a const key, so sharing it between threads is safe.
private final class KeyBox: @unchecked Sendable {
    let key: P256.Signing.PrivateKey
    init(_ key: P256.Signing.PrivateKey) { self.key = key }
}

/// The replica set's RFC 9701 signing keys, as this replica knows them: the current key signs,
/// the current and the rotated-out keys still in their overlap are published.
///
/// Keys live in the store, shared by every replica. The first replica to start creates the first
/// key (the store admits exactly one current key); `rotate` makes a new one current and keeps the
/// previous one published for `overlap`. A replica re-reads the keys on its next use after
/// `markStale()` (wired to the store's NOTIFY `keys`, sent by a rotation on any replica) and after
/// `refreshInterval`, in case a notification was lost; while one caller re-reads, the others go
/// on with the keys already loaded. No task of its own. Private keys never reach a log.
public final class SigningKeyRing: Sendable {
    public static let defaultOverlap: TimeInterval = 24 * 3600
    public static let refreshInterval: TimeInterval = 60

    private struct State {
        var keys: [SigningKey] = []
        var loadedAt: Date?
        var stale = true
    }

    private let store: any SigningKeyStore
    private let overlap: TimeInterval
    private let now: Now
    private let logger: Logger
    private let state = Mutex(State())

    public init(store: any SigningKeyStore, overlap: TimeInterval = defaultOverlap, now: @escaping Now = { Date() }, logger: Logger) {
        self.store = store
        self.overlap = overlap
        self.now = now
        self.logger = logger
    }

    /// The keys changed in the store (a rotation elsewhere): the next use re-reads them.
    public func markStale() {
        state.withLock { $0.stale = true }
    }

    /// The key that signs now; re-reads the keys when they are stale or old (on a first start,
    /// creating the first one).
    public func current() async throws -> SigningKey {
        let time = now()
        let (known, claimed): (SigningKey?, Bool) = state.withLock { state in
            let due = state.stale || state.loadedAt.map { time.timeIntervalSince($0) >= Self.refreshInterval } ?? true
            guard due else { return (state.keys.first, false) }
            // This caller re-reads; the others keep using what is loaded meanwhile.
            state.stale = false
            state.loadedAt = time
            return (state.keys.first, true)
        }
        if let known, !claimed { return known }
        if claimed {
            do {
                try await reload()
            } catch {
                state.withLock { $0.stale = true }
                guard let known else { throw error }
                logger.warning("signing keys not re-read; signing with the loaded key", metadata: ["kid": "\(known.kid)"])
                return known
            }
        }
        if let key = state.withLock({ $0.keys.first }) { return key }
        // Another caller is loading the very first keys: read them here too.
        try await reload()
        guard let key = state.withLock({ $0.keys.first }) else { throw TokendError.unavailable }
        return key
    }

    /// The keys to publish: the current one and those whose overlap has not ended.
    public func published() async throws -> [SigningKey] {
        _ = try await current()
        let time = now()
        return state.withLock { $0.keys.filter { ($0.retiresAt ?? .distantFuture) > time } }
    }

    /// Re-reads the keys from the store; creates the first key when the store has no current one.
    public func reload() async throws {
        var stored = try await storeCall(logger, "reading signing keys") { try await store.signingKeys() }
        if stored.first?.retiresAt != nil || stored.isEmpty {
            let first = SigningKey.generate(now: now())
            if try await storeCall(logger, "creating the first signing key", { try await store.insertFirstSigningKey(first) }) {
                logger.info("signing key created", metadata: ["kid": "\(first.kid)"])
            }
            stored = try await storeCall(logger, "reading signing keys") { try await store.signingKeys() }
        }
        let loaded = try stored.map { stored in
            do { return try SigningKey(stored) } catch {
                logger.error("a stored signing key cannot be loaded", metadata: ["kid": "\(stored.kid)"])
                throw TokendError.unavailable
            }
        }
        let time = now()
        let previous = state.withLock { state in
            defer {
                state.keys = loaded
                state.loadedAt = time
            }
            return state.keys.first?.kid
        }
        if let kid = loaded.first?.kid, kid != previous {
            logger.info("signing key in use", metadata: ["kid": "\(kid)", "published": "\(loaded.count)"])
        }
    }

    /// Makes a new key current; the previous one stays published for `overlap`. Returns the new
    /// key's `kid` and the previous one's. With an `audit` context, the rotation is recorded in
    /// the audit trail (by `kid`; never key material).
    public func rotate(audit: AuditContext? = nil) async throws -> (kid: String, previous: String?) {
        let previous = try await current().kid
        let time = now()
        let next = SigningKey.generate(now: time)
        let retiring = time.addingTimeInterval(overlap)
        let event = audit?.event(
            .signingKeyRotate,
            .signingKey,
            next.kid,
            detail: ["previous_kid": previous, "previous_retires_at": retiring.ISO8601Format()],
            at: time
        )
        try await storeCall(logger, "rotating the signing key") {
            try await store.rotateSigningKey(to: next, retiring: retiring, audit: event)
        }
        event?.log(to: logger)
        try await reload()
        logger.info("signing key rotated", metadata: ["kid": "\(next.kid)", "previous_kid": "\(previous)"])
        return (next.kid, previous)
    }

    /// Every stored key as the store has it (current first), for `tokenctl keys list`.
    public func list() async throws -> [StoredSigningKey] {
        try await storeCall(logger, "reading signing keys") { try await store.signingKeys() }.map { key in
            var key = key
            key.privateKey = []
            return key
        }
    }
}
