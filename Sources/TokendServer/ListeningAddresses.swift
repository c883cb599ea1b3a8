import Foundation
import Hummingbird
import Synchronization
import TokendAPI
import TokendCore
import UnixSignals

/// The listeners' bound addresses.
public final class ListeningAddresses: Sendable {
    private let state = Mutex<(public: String?, admin: String?)>((nil, nil))

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
