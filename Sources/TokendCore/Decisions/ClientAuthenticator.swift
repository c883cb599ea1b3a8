import Foundation
import Synchronization

/// Authenticates OAuth clients (RFC 6749 §2.3.1) against the client store.
///
/// Client records are cached for `recordTTL` so that the request path does not query the store on
/// every call; a deletion or secret rotation made through this replica takes effect at once, one
/// made through another replica within `recordTTL`. Verification itself is one HMAC-SHA-256 of
/// the presented secret, compared in constant time with the stored hash; the HMAC key schedule
/// of a cached client is computed once (`ClientSecret.Verifier`), not per request.
public final class ClientAuthenticator: Sendable {
    private let store: any ClientStore
    private let now: Now
    private let recordTTL: TimeInterval
    /// Slows secret guessing (`nil`: never slowed, as for the admin API's own paths and tests).
    public let limiter: GuessLimiter?
    private struct Cached {
        let record: ClientRecord
        let verifier: ClientSecret.Verifier
        let until: Date
        /// Tells this entry apart from every other one cached before or after it (`Verified`).
        let serial: UInt64
    }
    private let cache = Mutex<[String: Cached]>([:])
    private let serials = Atomic<UInt64>(0)
    /// Checked for an unknown client, so that timing does not tell which ids exist.
    private static let unknownClient = ClientSecret.Verifier(salt: [UInt8](repeating: 0, count: 16), hash: [UInt8](repeating: 0, count: 32))

    public init(store: any ClientStore, now: @escaping Now = { Date() }, recordTTL: TimeInterval = 2, limiter: GuessLimiter? = nil) {
        self.store = store
        self.now = now
        self.recordTTL = recordTTL
        self.limiter = limiter
    }

    /// `authenticate(clientID:secret:)` for a request from `source` (its IP address; `nil` when
    /// unknown), under the guessing limits: refused with `tooManyRequests` before the secret is
    /// checked when `source` is past the limit for `clientID`, and instead of `unauthenticated`
    /// when `source` is past the limit for failures.
    public func authenticate(clientID: String, secret: String, source: String?) async throws -> ClientRecord {
        try limiter?.checkPresented(clientID: clientID, from: source)
        do {
            return try await authenticate(clientID: clientID, secret: secret)
        } catch let error as TokendError where error.code == .unauthenticated {
            throw failed(clientID: clientID, source: source, error)
        }
    }

    /// A request from `source` that failed authentication before any secret could be checked (no
    /// or malformed credentials): counted like a wrong secret; returns what to answer.
    public func failed(clientID: String? = nil, source: String?, _ error: TokendError) -> TokendError {
        limiter?.failedAuthentication(clientID: clientID, from: source, failure: error) ?? error
    }

    /// `authenticate(clientID:secret:source:)` when it can succeed without the store, synchronously:
    /// the client's record is cached and current, `secret` is its secret and `source` is not past
    /// the guessing limit for it. `nil` otherwise, with nothing counted: then the caller asks
    /// `authenticate`, which decides (and counts a failure) as it always does.
    public func authenticateFromCache(clientID: String, secret: String, source: String?) -> ClientRecord? {
        verifyFromCache(clientID: clientID, secret: secret, source: source)?.record
    }

    /// `authenticateFromCache`, and what the secret was verified against, for
    /// `authenticateRemembered`.
    public func verifyFromCache(clientID: String, secret: String, source: String?) -> (record: ClientRecord, verified: Verified)? {
        guard !clientID.isEmpty, clientID.utf8.count <= ClientRegistry.maximumIDLength, secret.utf8.count <= 512 else { return nil }
        if let limiter, limiter.refusesPresented(clientID: clientID, from: source) { return nil }
        guard let cached = cache.withLock({ $0[clientID] }), cached.until > now(), cached.verifier.matches(secret) else { return nil }
        return (cached.record, Verified(clientID: clientID, serial: cached.serial))
    }

    /// A secret `verifyFromCache` found right: for the cached entry of the client it matched.
    /// A connection of the HTTP fast path keeps one beside the exact credentials it came in, so
    /// that the same credentials presented again on that connection cost no HMAC
    /// (`authenticateRemembered`).
    public struct Verified: Sendable {
        public let clientID: String
        let serial: UInt64
    }

    /// `authenticateFromCache` for a secret it verified before (`verified`), presented again: the
    /// client's cached entry is still the one the secret matched (no secret rotation or deletion
    /// through this replica since, no reload from the store, whose record may have changed) and
    /// still current, and `source` is not past the guessing limit for the client.
    public func authenticateRemembered(_ verified: Verified, source: String?) -> ClientRecord? {
        if let limiter, limiter.refusesPresented(clientID: verified.clientID, from: source) { return nil }
        guard let cached = cache.withLock({ $0[verified.clientID] }), cached.serial == verified.serial, cached.until > now() else { return nil }
        return cached.record
    }

    /// The client, if `secret` is its current secret; `TokendError.unauthenticated` otherwise.
    public func authenticate(clientID: String, secret: String) async throws -> ClientRecord {
        guard !clientID.isEmpty, clientID.utf8.count <= ClientRegistry.maximumIDLength, secret.utf8.count <= 512 else {
            throw Self.failure
        }
        let record: ClientRecord?
        let verifier: ClientSecret.Verifier
        let current = now()
        if let cached = cache.withLock({ $0[clientID] }), cached.until > current {
            record = cached.record
            verifier = cached.verifier
        } else {
            do {
                record = try await store.client(id: clientID)
            } catch {
                throw TokendError.unavailable
            }
            if let record {
                let made = ClientSecret.Verifier(salt: record.secretSalt, hash: record.secretHash)
                verifier = made
                let serial = serials.add(1, ordering: .relaxed).newValue
                cache.withLock { cache in
                    if cache.count > 10_000 { cache.removeAll() }
                    cache[clientID] = Cached(record: record, verifier: made, until: current.addingTimeInterval(recordTTL), serial: serial)
                }
            } else {
                verifier = Self.unknownClient
            }
        }
        // Verify even for an unknown client so that timing does not tell which ids exist.
        guard verifier.matches(secret), let record else { throw Self.failure }
        return record
    }

    private static let failure = TokendError(.unauthenticated, "client authentication failed")

    /// Forgets a cached client after this replica changed or deleted it.
    public func invalidate(clientID: String) {
        _ = cache.withLock { $0.removeValue(forKey: clientID) }
    }
}
