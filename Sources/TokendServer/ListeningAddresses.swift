import Foundation
import Hummingbird
import Synchronization
import TokendAPI
import TokendCore
import UnixSignals

/// The listeners' bound addresses.
public final class ListeningAddresses: Sendable {
    private let state = Mutex<(public: String?, admin: String?)>((nil, nil))
    private let grpcState = Mutex<String?>(nil)

    /// `scheme://host:port` of the gRPC listener, once it is bound (never, when it is off).
    public var grpc: String? { grpcState.withLock { $0 } }

    func bound(grpc url: String) { grpcState.withLock { $0 = url } }

    /// `scheme://host:port` of the public and admin listeners; `nil` until both are bound.
    public var urls: (public: String, admin: String)? {
        state.withLock { state in
            guard let pub = state.public, let admin = state.admin else { return nil }
            return (pub, admin)
        }
    }

    /// Records one listener; returns true when this completes the pair.
    func bound(public url: String) -> Bool {
        state.withLock {
            $0.public = url
            return $0.admin != nil
        }
    }
    func bound(admin url: String) -> Bool {
        state.withLock {
            $0.admin = url
            return $0.public != nil
        }
    }
}
